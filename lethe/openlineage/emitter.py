"""Sends Lethe's OpenLineage events through the openlineage-python client, configured the client's own way.

The client picks its transport from OPENLINEAGE_URL (HTTP), OPENLINEAGE_CONFIG or an openlineage.yml
(any transport: file, kafka, ...), or OPENLINEAGE__TRANSPORT__* variables; OPENLINEAGE_DISABLED=true turns
it off. With none of them the client would print every event to the console: Lethe then sends nothing.
An emission that fails is logged and never fails the pipeline: the lineage of record is in Neo4j.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import RunEvent

import lethe.openlineage.events as events
import lethe.openlineage.facts as facts
from lineage.store import GraphStore

__all__ = ["LineageEmitter", "transport_configured"]

log = logging.getLogger(__name__)


def transport_configured(environ: Mapping[str, str], cwd: Path, home: Path) -> bool:
    """Whether any of the places the client reads names a transport (and OpenLineage is not disabled)."""
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OPENLINEAGE_URL") or environ.get("OPENLINEAGE_CONFIG"):
        return True
    if any(key.startswith("OPENLINEAGE__TRANSPORT") for key in environ):
        return True
    return _is_file(cwd / "openlineage.yml") or _is_file(home / ".openlineage" / "openlineage.yml")


def _is_file(path: Path) -> bool:
    """Path.is_file, False where the folder may not be read (a process run as another user: the client
    could not read a configuration there either)."""
    try:
        return path.is_file()
    except PermissionError:
        return False


def _client_from_environment(logger: logging.Logger) -> OpenLineageClient | None:
    if not transport_configured(os.environ, Path.cwd(), Path.home()):
        return None
    client = OpenLineageClient()  # the client resolves the transport itself
    if client.transport.kind == "console" and (client.config.transport or {}).get("type") != "console":
        logger.warning("OpenLineage: the configuration found (OPENLINEAGE_CONFIG=%s) names no transport; "
                       "Lethe sends no events. Add `transport:` to it or set OPENLINEAGE_URL.",
                       os.environ.get("OPENLINEAGE_CONFIG", "-"))
        return None
    return client


class LineageEmitter:
    """Emits the events of Lethe's runs for one namespace; without a client it does nothing at all."""

    def __init__(self, client: OpenLineageClient | None, namespace: str, logger: logging.Logger = log):
        if not namespace.strip():
            raise ValueError("the OpenLineage namespace is empty; set OPENLINEAGE_NAMESPACE, e.g. lethe://prod")
        self.client, self.namespace, self.log = client, namespace, logger

    @classmethod
    def from_environment(cls, namespace: str, logger: logging.Logger = log) -> LineageEmitter:
        """An emitter with the transport the OPENLINEAGE_* configuration names, or a silent one."""
        return cls(_client_from_environment(logger), namespace, logger)

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def close(self) -> None:
        if self.client is not None:
            self.client.close(timeout=5.0)

    def _send(self, what: str, build: Callable[[], Sequence[RunEvent]]) -> int:
        """Build the events and emit them; a failure is logged with what it was about, and 0 returned."""
        if self.client is None:
            return 0
        try:
            batch = build()
            for event in batch:
                self.client.emit(event)
        except Exception as exc:  # noqa: BLE001 (any transport error; the graph already holds the lineage)
            self.log.error("OpenLineage: could not emit the events of %s (%s: %s); the run goes on and its lineage "
                           "is in Neo4j — check the OPENLINEAGE_* transport settings", what, type(exc).__name__, exc)
            return 0
        self.log.info("OpenLineage: emitted %d event(s) of %s to namespace %s", len(batch), what, self.namespace)
        return len(batch)

    def dataset_version(self, graph: GraphStore, version_id: str, at: datetime | None = None) -> int:
        """START and COMPLETE of `lethe.dataset_version` for a version written to the graph."""
        return self._send(f"dataset version {version_id}", lambda: events.dataset_version_events(
            self.namespace, facts.read_dataset_version(graph, version_id), at or _now()))

    def fine_tune(self, graph: GraphStore, adapter_id: str, dataset_version_id: str) -> int:
        """START and COMPLETE of `lethe.fine_tune` for a served adapter written to the graph."""
        return self._send(f"fine-tune of {adapter_id}", lambda: events.fine_tune_events(
            self.namespace, facts.read_fine_tune(graph, adapter_id, dataset_version_id)))

    def deployment(self, graph: GraphStore, deployment_id: str, at: datetime | None = None) -> int:
        """START and COMPLETE of `lethe.deployment` for a deployment written to the graph."""
        return self._send(f"deployment {deployment_id}", lambda: events.deployment_events(
            self.namespace, facts.read_deployment(graph, deployment_id), at or _now()))

    def failed(self, job: str, run_key: str, error: BaseException) -> int:
        """START and FAIL of a run of `job` (e.g. lethe.fine_tune) that failed before it wrote lineage."""
        return self._send(f"failed {job} run {run_key}",
                          lambda: events.failure_events(self.namespace, job, run_key, error, _now()))


def _now() -> datetime:
    return datetime.now(timezone.utc)
