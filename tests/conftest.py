"""Test session: a real Neo4j (the local launcher, or NEO4J_URI when set) shared by every graph test, and the
demo corpus's pipeline trained once for every test of it."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytest

from lethe.settings import Settings
from lineage.keys import SubjectKeyer
from lineage.store import GraphStore
from tests.neo4j_servers import EARLY, SERVERS, session_server_settings
from tests.pipeline_support import CORPUS, TRAIN_CONFIG, SharedPipeline, materialized_pipeline

ROOT = Path(__file__).resolve().parents[1]
TEST_PEPPER = bytes(range(32))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--shuffle", type=int, default=None, metavar="SEED",
                     help="run the tests in an order drawn at random from SEED: no test may depend on another's "
                          "order or leftovers (`make test PYTEST_ARGS=--shuffle=$RANDOM`)")


def _fixtures(item: pytest.Item) -> tuple[str, ...]:
    return tuple(getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A random order under --shuffle; else the modules with no server test first (in their usual order), so
    they run while the servers start (`pytest_collection_finish`)."""
    seed = config.getoption("--shuffle")
    if seed is not None:
        random.Random(seed).shuffle(items)
        return
    server_modules = {item.path for item in items if set(_fixtures(item)) & set(SERVERS)}
    items.sort(key=lambda item: item.path in server_modules)  # stable: a module's tests stay together


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the local Neo4j servers in the background as soon as the selected tests are known to need them.
    (Building the tiny base model in a thread too was measured slower on 2 cores: 505 s vs 416 s for the
    fresh-clone run, its torch threads contending with the torch tests.)"""
    wanted = [name for name in SERVERS if any(name in _fixtures(item) for item in session.items)]
    if wanted:
        EARLY.begin(wanted)


def pytest_unconfigure(config: pytest.Config) -> None:
    EARLY.stop_unused()


@pytest.fixture(scope="session")
def neo4j_settings() -> Settings:
    return session_server_settings()


@pytest.fixture(scope="session")
def neo4j_server(neo4j_settings: Settings):
    """The session's Neo4j (the local one, started early, or NEO4J_URI's); stopped at the end if we started it."""
    with EARLY.serving("neo4j_server") as settings:
        yield settings


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


@pytest.fixture(scope="session")
def coalesced(shared_pipeline) -> dict:
    """Two customers' requests run together into one remedy on a copy of the trained pipeline, once a session
    (tests/erasure_support.py): the requests, what the filing answered, the outcomes, and the snapshot after it."""
    from tests.erasure_support import run_coalesced

    return run_coalesced(shared_pipeline)


@pytest.fixture
def scratch_pipeline(shared_pipeline: SharedPipeline):
    """The trained pipeline, for a test that changes it: the state folder and graph are put back after it."""
    with shared_pipeline.at(shared_pipeline.trained, scratch=True) as built:
        yield built
