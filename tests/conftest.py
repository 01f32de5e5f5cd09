"""Test session: a real Neo4j (the local launcher, or NEO4J_URI when set) shared by every graph test, and the
demo corpus's pipeline trained once for every test of it."""

from __future__ import annotations

import logging
import os
import random
import socket
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seed = config.getoption("--shuffle")
    if seed is not None:
        random.Random(seed).shuffle(items)


@pytest.fixture(scope="session")
def neo4j_settings() -> Settings:
    """Settings of the test server: NEO4J_URI if given, else a local one on its own port and folder."""
    if os.environ.get("NEO4J_URI"):
        return Settings()
    port = int(os.environ.get("LETHE_TEST_NEO4J_PORT") or _free_port())
    return Settings(state_dir=ROOT / ".lethe-test", local_bolt_port=port, local_heap="1g",
                    local_page_cache="256m")


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
    server = LocalNeo4j(neo4j_settings)
    if not server.status().running:
        server.stop()  # a server left by a killed session, on another port: replace it
    started = not server.status().running
    server.start()
    yield neo4j_settings
    if started and not os.environ.get("LETHE_TEST_KEEP_NEO4J"):
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
