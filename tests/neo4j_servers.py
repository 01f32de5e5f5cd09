"""The local Neo4j servers a test session needs, started early: one after another in a background thread,
as soon as the selected tests are known, while the tests that need no graph run (tests/conftest.py)."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lethe.neo4j_server import LocalNeo4j
from lethe.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BULK_PEPPER = "ab" * 32


def free_port() -> int:
    """A port nobody listens on, so a test server never collides with a developer's."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@functools.cache
def session_server_settings() -> Settings:
    """Settings of the session's server: NEO4J_URI if given, else a local one on its own port and folder."""
    if os.environ.get("NEO4J_URI"):
        return Settings()
    port = int(os.environ.get("LETHE_TEST_NEO4J_PORT") or free_port())
    return Settings(state_dir=ROOT / ".lethe-test", local_bolt_port=port, local_heap="1g",
                    local_page_cache="256m")


@functools.cache
def bulk_server_settings() -> Settings:
    """A private server for the bulk-import tests (the importer stops and restarts it): its own folder and port."""
    folder = Path(tempfile.mkdtemp(prefix="lethe-bulk-"))
    return Settings(state_dir=folder / "state", local_bolt_port=free_port(), local_heap="512m",
                    local_page_cache="128m", LETHE_PEPPER=BULK_PEPPER)


# Fixture name -> the settings of the local server it starts.
SERVERS: dict[str, Callable[[], Settings]] = {"neo4j_server": session_server_settings,
                                              "bulk_server": bulk_server_settings}


class EarlyServers:
    """Start the wanted servers in one background thread (in order: one Maven build of the launcher, and the
    session's server first); a fixture waits for its own. Servers this session did not start are never stopped."""

    def __init__(self):
        self.owned: dict[str, LocalNeo4j] = {}
        self.used: set[str] = set()
        self._ready: dict[str, threading.Event] = {}

    def begin(self, names: list[str]) -> None:
        pending = []
        for name in [n for n in names if n not in self._ready]:
            self._ready[name] = threading.Event()
            settings = SERVERS[name]()
            server = LocalNeo4j(settings) if settings.uses_local_server else None
            if server is not None and not server.status().running:
                server.stop()  # a server left by a killed session, on another port: replace it
            if server is None or server.status().running:  # NEO4J_URI, or a LETHE_TEST_NEO4J_PORT server up
                self._ready[name].set()
                continue
            self.owned[name] = server
            pending.append(name)
        if pending:
            threading.Thread(target=self._start, args=(pending,), name="neo4j-early-start", daemon=True).start()

    def _start(self, names: list[str]) -> None:
        for name in names:
            try:
                self.owned[name].start()
            except Exception:  # noqa: BLE001 - the fixture's own start() raises it again, clearly
                logging.getLogger(__name__).exception("test server %s did not start in the background", name)
            finally:
                self._ready[name].set()

    @contextmanager
    def serving(self, name: str) -> Iterator[Settings]:
        """The server of fixture `name`, up (started now if nobody started it early); stopped after if ours."""
        if name not in self._ready:
            self.begin([name])
        self._ready[name].wait()
        self.used.add(name)
        settings = SERVERS[name]()
        if settings.uses_local_server:
            LocalNeo4j(settings).start()  # up already, or raises what went wrong
        try:
            yield settings
        finally:
            if name in self.owned and not os.environ.get("LETHE_TEST_KEEP_NEO4J"):
                self._stop(name)

    def _stop(self, name: str) -> None:
        server = self.owned.pop(name)
        if name == "bulk_server":
            # Thrown away with its folder, so nothing is lost by not waiting for a clean shutdown: SIGTERM,
            # then SIGKILL at once (it took the whole 10 s it was given before, every run). The session's
            # server keeps its store: it gets 60 s.
            server.stop(timeout_s=0.0)
            shutil.rmtree(SERVERS[name]().state_dir.parent, ignore_errors=True)
        else:
            server.stop()

    def stop_unused(self) -> None:
        """At the end of the session: stop the servers started early that no test used (e.g. after -x)."""
        for name in [n for n in self.owned if n not in self.used]:
            self._ready[name].wait()
            self._stop(name)


EARLY = EarlyServers()
