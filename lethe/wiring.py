"""Builds the collaborators the commands need from settings (the composition root's one place)."""

from __future__ import annotations

import logging
from pathlib import Path

from neo4j.exceptions import AuthError

from erasure.context import ErasureContext, RemedyCommitted
from lethe.settings import Settings
from lineage.content_store import ContentStore
from lineage.errors import GraphUnavailableError
from lineage.keys import SubjectKeyer
from lineage.local_files import make_private, private_dir
from lineage.store import GraphStore


def open_graph(settings: Settings, apply_schema: bool = True) -> GraphStore:
    """Connect to the configured Neo4j (the local one unless NEO4J_URI is set) and ensure the schema."""
    try:
        store = GraphStore.connect(settings.resolved_neo4j_uri(), settings.neo4j_user,
                                   settings.resolved_neo4j_password(), settings.neo4j_database)
    except GraphUnavailableError as exc:
        if settings.uses_local_server or isinstance(exc.__cause__, AuthError):
            raise
        raise GraphUnavailableError(
            f"cannot reach the Neo4j that NEO4J_URI names ({settings.neo4j_uri}): check that it runs and that this "
            "machine can reach it (`lethe neo4j start` starts only Lethe's own server, used when NEO4J_URI is "
            "unset)") from exc
    if apply_schema:
        store.apply_schema()
    return store


def subject_keyer(settings: Settings) -> SubjectKeyer:
    """The HMAC keyer under the configured pepper (refuses to run without one)."""
    return SubjectKeyer(settings.load_pepper())


def content_store(settings: Settings) -> ContentStore:
    return ContentStore(settings.content_store_path)


def openlineage_remedy_events(settings: Settings):
    """The remedy hook that sends OpenLineage events of what a remedy's lineage commit wrote (the derived
    dataset version, the fine-tune that made the new adapter, its deployments), when an OpenLineage
    transport is configured (OPENLINEAGE_*: docs/openlineage.md). The client is imported only when a remedy
    commits, not by every command that builds a context. A failed send is logged, never raised."""

    def send(graph: GraphStore, committed: RemedyCommitted) -> None:
        from lethe.openlineage import LineageEmitter

        emitter = LineageEmitter.from_environment(settings.openlineage_namespace)  # silent when unconfigured
        if not emitter.enabled:
            return
        try:
            if committed.derived:
                emitter.dataset_version(graph, committed.dataset_version)
            emitter.fine_tune(graph, committed.adapter, committed.dataset_version)
            for deployment in committed.deployments:
                emitter.deployment(graph, deployment)
        finally:
            emitter.close()
    return send


def erasure_context(settings: Settings, graph: GraphStore) -> ErasureContext:
    """The erasure domain's collaborators under these settings, on an open graph connection."""
    return ErasureContext(graph=graph, state_dir=settings.state_dir, record_batches_dir=settings.record_batches_dir,
                          model_store_dir=settings.model_store_dir, base_model=settings.base_model,
                          load_keyer=lambda: subject_keyer(settings), open_content=lambda: content_store(settings),
                          on_remedy_committed=openlineage_remedy_events(settings))


def configure_logging(state_dir: Path, level: int = logging.INFO) -> Path:
    """Log to .lethe/logs/lethe.log; messages carry counts and ids, never raw identifiers."""
    private_dir(state_dir)
    log_dir = private_dir(state_dir / "logs")
    path = log_dir / "lethe.log"
    root = logging.getLogger()
    if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path.resolve()
               for h in root.handlers):
        handler = logging.FileHandler(path)
        make_private(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("neo4j").setLevel(logging.WARNING)
    return path


def cli_settings() -> Settings:
    """The settings a command runs with, logging to the state folder's log file."""
    settings = Settings()
    configure_logging(settings.state_dir)
    return settings
