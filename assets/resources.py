"""Dagster resources: the lineage graph, the source/content store and the model store."""


from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from lethe.openlineage import LineageEmitter
from lineage.content_store import ContentStore
from lineage.keys import SubjectKeyer
from lineage.store import GraphStore


class Neo4jResource(dg.ConfigurableResource):
    """The lineage graph: one driver per run, opened in setup and closed in teardown."""

    uri: str
    user: str = "neo4j"
    password: str | None = None
    password_file: str | None = None
    database: str = "neo4j"
    _store: GraphStore | None = PrivateAttr(default=None)

    def _password(self) -> str:
        if self.password:
            return self.password
        if self.password_file and Path(self.password_file).is_file():
            return Path(self.password_file).read_text().strip()
        raise dg.DagsterInvariantViolationError(
            "Neo4jResource needs a password: set NEO4J_PASSWORD, or start the local server with "
            "`lethe neo4j start` (it writes .lethe/neo4j/password)")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._store = GraphStore.connect(self.uri, self.user, self._password(), self.database)
        self._store.apply_schema()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def graph(self) -> GraphStore:
        if self._store is None:
            raise dg.DagsterInvariantViolationError("Neo4jResource used outside a run")
        return self._store


class SourceStoreResource(dg.ConfigurableResource):
    """Where record batches arrive, where text is kept (by hash in the graph) and bad lines go."""

    batches_dir: str
    content_db: str
    quarantine_dir: str
    pepper: str | None = None
    pepper_file: str | None = None

    def content(self) -> ContentStore:
        return ContentStore(Path(self.content_db))

    def keyer(self) -> SubjectKeyer:
        """The subject keyer under the configured pepper; refuses to run without one."""
        text = self.pepper or (Path(self.pepper_file).read_text().strip()
                               if self.pepper_file and Path(self.pepper_file).is_file() else None)
        if not text:
            raise dg.DagsterInvariantViolationError(
                "no pepper: set LETHE_PEPPER or LETHE_PEPPER_FILE (see README, 'The pepper')")
        return SubjectKeyer(bytes.fromhex(text))

    def batch_path(self, batch: str) -> Path:
        """The file of one batch (partition key = file name), JSONL or Parquet."""
        path = Path(self.batches_dir) / batch
        if not path.is_file():
            raise dg.Failure(f"record batch {batch!r} has no file at {path}; partitions are file names "
                             f"in {self.batches_dir}")
        return path


class ModelStoreResource(dg.ConfigurableResource):
    """Base model and adapters on disk (Hugging Face format)."""

    root: str
    base_model: str | None = None

    def base_model_dir(self) -> Path:
        if not self.base_model:
            raise dg.Failure("no base model: set LETHE_BASE_MODEL to a Hugging Face causal LM directory "
                             "(`lethe demo` builds a tiny one under .lethe/models/base-tiny)")
        return Path(self.base_model)

    def adapters_dir(self) -> Path:
        path = Path(self.root) / "adapters"
        path.mkdir(parents=True, exist_ok=True)
        return path


class OpenLineageResource(dg.ConfigurableResource):
    """OpenLineage events of the assets' runs; the transport is the client's (OPENLINEAGE_*), none: silent."""

    namespace: str = "lethe://default"
    _emitter: LineageEmitter | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._emitter = LineageEmitter.from_environment(self.namespace, dg.get_dagster_logger())

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._emitter is not None:
            self._emitter.close()
            self._emitter = None

    @property
    def emitter(self) -> LineageEmitter:
        if self._emitter is None:
            raise dg.DagsterInvariantViolationError("OpenLineageResource used outside a run")
        return self._emitter
