"""Test session: a real Neo4j (the local launcher, or NEO4J_URI when set) shared by every graph test, and the
demo corpus's pipeline trained once for every test of it."""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import threading
from pathlib import Path

import pytest

from lethe.neo4j_server import LocalNeo4j
from lethe.settings import Settings
from lineage.keys import SubjectKeyer
from lineage.store import GraphStore
from tests.pipeline_support import CORPUS, TRAIN_CONFIG, SharedPipeline, materialized_pipeline

ROOT = Path(__file__).resolve().parents[1]
TEST_PEPPER = bytes(range(32))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--shuffle", type=int, default=None, metavar="SEED",
                     help="run the tests in an order drawn at random from SEED: no test may depend on another's "
                          "order or leftovers (`make test PYTEST_ARGS=--shuffle=$RANDOM`)")


def _needs_graph(item: pytest.Item) -> bool:
    return "neo4j_server" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A random order under --shuffle; else the modules with no graph test first (in their usual order), so
    they run while the session's Neo4j starts (`pytest_collection_finish`)."""
    seed = config.getoption("--shuffle")
    if seed is not None:
        random.Random(seed).shuffle(items)
        return
    graph_modules = {item.path for item in items if _needs_graph(item)}
    items.sort(key=lambda item: item.path in graph_modules)  # stable: a module's tests stay together


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the local Neo4j in the background as soon as the selected tests are known to need it."""
    settings = _test_server_settings()
    if settings.uses_local_server and any(_needs_graph(item) for item in session.items):
        _EARLY_START.begin(LocalNeo4j(settings))


def pytest_unconfigure(config: pytest.Config) -> None:
    _EARLY_START.stop_if_unused()


@functools.cache
def _test_server_settings() -> Settings:
    """Settings of the test server: NEO4J_URI if given, else a local one on its own port and folder."""
    if os.environ.get("NEO4J_URI"):
        return Settings()
    port = int(os.environ.get("LETHE_TEST_NEO4J_PORT") or _free_port())
    return Settings(state_dir=ROOT / ".lethe-test", local_bolt_port=port, local_heap="1g",
                    local_page_cache="256m")


class _EarlyStart:
    """The session's local Neo4j, started in a thread while the tests that need no graph run."""

    def __init__(self):
        self.server: LocalNeo4j | None = None
        self.started = self.used = False
        self._thread: threading.Thread | None = None

    def begin(self, server: LocalNeo4j) -> None:
        self.server = server
        if not server.status().running:
            server.stop()  # a server left by a killed session, on another port: replace it
        if server.status().running:
            return  # LETHE_TEST_NEO4J_PORT names a server that is up: use it, never stop it
        self.started = True
        self._thread = threading.Thread(target=self._start, name="neo4j-early-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self.server.start()
        except Exception:  # noqa: BLE001 - the fixture's own start() below raises it again, clearly
            logging.getLogger(__name__).exception("the test Neo4j did not start in the background")

    def wait(self) -> None:
        """Block until the background start ended; the caller's start() then finds the server up, or fails."""
        self.used = True
        if self._thread is not None:
            self._thread.join()

    def stop_if_unused(self) -> None:
        if self.started and not self.used and self.server is not None:
            self.wait()
            self.server.stop()


_EARLY_START = _EarlyStart()


@pytest.fixture(scope="session")
def neo4j_settings() -> Settings:
    return _test_server_settings()


def _free_port() -> int:
    """A port nobody listens on, so the test server never collides with a developer's."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def neo4j_server(neo4j_settings: Settings):
    """Start the local Neo4j for the session (unless NEO4J_URI is set); stop it if we started it."""
    if not neo4j_settings.uses_local_server:
        yield neo4j_settings
        return
    if _EARLY_START.server is None:  # no early start: run on its own (e.g. under a plugin that collects late)
        _EARLY_START.begin(LocalNeo4j(neo4j_settings))
    _EARLY_START.wait()
    server = _EARLY_START.server
    server.start()  # up already, or raises what went wrong
    yield neo4j_settings
    if _EARLY_START.started and not os.environ.get("LETHE_TEST_KEEP_NEO4J"):
        server.stop()


@pytest.fixture(scope="session")
def session_graph(neo4j_server: Settings):
    store = GraphStore.connect(neo4j_server.resolved_neo4j_uri(), neo4j_server.neo4j_user,
                               neo4j_server.resolved_neo4j_password(), neo4j_server.neo4j_database)
    store.apply_schema()
    yield store
    store.close()


@pytest.fixture
def graph(session_graph: GraphStore) -> GraphStore:
    """The session's graph, emptied before each test."""
    session_graph.clear_all()
    return session_graph


@pytest.fixture(autouse=True)
def _umask_restored():
    """Entry points narrow the process umask (lineage.local_files); no test leaves that to the next one."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


@pytest.fixture(autouse=True)
def _log_files_closed():
    """The CLI adds a root log file in its state folder (lethe.wiring.configure_logging); no test leaves it
    to the next one, whose own state folder it is not (and which may have been deleted)."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler) and h not in before]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


@pytest.fixture
def keyer() -> SubjectKeyer:
    return SubjectKeyer(TEST_PEPPER)


@pytest.fixture(scope="session")
def tiny_base_model() -> Path:
    """The demo's tiny base model, built once and cached under .lethe-test/models between runs."""
    from lethe.demo.models import build_demo_base_model

    return build_demo_base_model(ROOT / ".lethe-test" / "models" / "base-tiny")


@pytest.fixture(scope="session")
def shared_pipeline(tmp_path_factory, neo4j_server, session_graph, tiny_base_model) -> SharedPipeline:
    """The demo corpus's pipeline materialized once (two batch partitions, then shards → … → deployment), kept
    as the snapshot `trained`. Built under a umask of 022, a shell's usual: Lethe must make its files
    owner-only by itself."""
    from lethe.demo.corpus import generate_corpus

    corpus = generate_corpus(**CORPUS)
    state = tmp_path_factory.mktemp("pipeline") / "state"
    previous = os.umask(0o022)
    try:
        with materialized_pipeline(state, neo4j_server, session_graph, tiny_base_model, corpus,
                                   TRAIN_CONFIG) as built:
            env, train = built["env"], built["train"]
    finally:
        os.umask(previous)
    shared = SharedPipeline(state, session_graph, env, corpus, train)
    shared.trained = shared.take("trained")
    return shared


@pytest.fixture
def pipeline(shared_pipeline: SharedPipeline):
    """The trained pipeline, for a test that only reads it (shared with the read-only tests around it)."""
    with shared_pipeline.at(shared_pipeline.trained, scratch=False) as built:
        yield built


@pytest.fixture
def scratch_pipeline(shared_pipeline: SharedPipeline):
    """The trained pipeline, for a test that changes it: the state folder and graph are put back after it."""
    with shared_pipeline.at(shared_pipeline.trained, scratch=True) as built:
        yield built
