"""What the routes share: settings, tokens, the subject keyer and one graph connection per process."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from lethe import wiring
from lethe.api.auth import TokenStore
from lethe.api.errors import field_error
from erasure.context import ErasureContext
from erasure.requests import SubjectIdentifiers
from lethe.settings import Settings
from lineage.keys import SubjectKeyer
from lineage.store import GraphStore


class Services:
    """The API's collaborators; the graph opens on first use (so the app starts while Neo4j is still down)."""

    def __init__(self, settings: Settings, tokens: TokenStore, keyer: SubjectKeyer):
        self.settings, self.tokens, self.keyer = settings, tokens, keyer
        self._graph: GraphStore | None = None
        self._lock = threading.Lock()

    @property
    def state_dir(self) -> Path:
        return Path(self.settings.state_dir)

    def graph(self) -> GraphStore:
        """The one driver of this process (sync routes run in a thread pool, hence the lock)."""
        with self._lock:
            if self._graph is None:
                self._graph = wiring.open_graph(self.settings)
            return self._graph

    def erasure(self) -> ErasureContext:
        """The erasure domain's collaborators on this process's graph connection."""
        return wiring.erasure_context(self.settings, self.graph())

    def subject_keys(self, identifiers: SubjectIdentifiers, loc: tuple[str, ...]) -> dict[str, str]:
        """Kind -> subject key; an identifier that cannot be keyed is a 422 naming its field only."""
        keys = {}
        for kind, value in identifiers.raw().items():
            try:
                keys[kind] = self.keyer.key(kind, value)
            except ValueError as exc:
                raise field_error((*loc, kind), str(exc)) from None
        return keys

    def close(self) -> None:
        with self._lock:
            if self._graph is not None:
                self._graph.close()
                self._graph = None


def services(request: Request) -> Services:
    """FastAPI dependency: the app's services."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]
