"""The console's test world: the real app served by uvicorn on a free port, over the session's Neo4j, and one real
Chromium (Debian's, driven by Playwright) per test module.

The world holds the API tests' lineage (Ada's tickets in a dataset version, four shard runs, a merged adapter, a
deployment), a token of each role, and one request that went through every step with a real attestation:
signed by the state folder's own keyring, logged in its transparency log, and reported on by the report code.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import uvicorn

from erasure.keyring import Keyring
from erasure.reporting import build_report
from erasure.requests import request_dir
from lethe.api import Role, create_app
from lineage.content_store import ContentStore
from tests.attestation.attestation_fixtures import NOW as ATTESTED_AT, make_statement
from tests.erasure.test_reporting import make_run
from tests.lethe.test_api import app_settings, make_tokens
from tests.lineage.lineage_fixtures import build_lineage
from tests.graph_snapshot import GraphDump
from tests.neo4j_servers import ROOT, free_port

CHROMIUM = Path(os.environ.get("LETHE_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / ".lethe-test" / "console-screenshots"


def _attested_request(state: Path, keyer) -> str:
    """A request whose run folder holds every step, a bundle the keyring signed and logged, and its report; the log
    has grown by one entry since the bundle's checkpoint."""
    received = datetime.now(timezone.utc) - timedelta(days=20)
    request = make_run(state, keyer, 1, received=received, until="attest")
    keyring = Keyring.open(state, now=ATTESTED_AT - timedelta(days=30))
    bundle = keyring.publish(make_statement(), now=ATTESTED_AT + timedelta(minutes=1))
    bundle.save(request_dir(state, request.id) / "attestation.bundle.json")
    keyring.log.append(b"a later attestation")  # the bundle's checkpoint is now an older one
    keyring.log.sign_checkpoint(keyring.log_keys, now=ATTESTED_AT + timedelta(hours=1))
    build_report(state, request.id)
    return request.id


class Server:
    """The app served by uvicorn in a thread (a real HTTP server: cookies, forms and uploads as browsers send)."""

    def __init__(self, app, port: int):
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=True, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the console's test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def console_world(tmp_path_factory, neo4j_server, session_graph):
    """The served console: its URL, settings, tokens by role, the attested request, the lineage's dump (to put
    it back when another test emptied the graph) and the log file every log record went to (the server's access
    log included)."""
    from lineage.keys import SubjectKeyer
    from tests.conftest import TEST_PEPPER

    session_graph.clear_all()
    tmp = tmp_path_factory.mktemp("console")
    settings = app_settings(tmp, neo4j_server)
    keyer = SubjectKeyer(TEST_PEPPER)
    content = ContentStore(settings.content_store_path)
    plan, _ = build_lineage(session_graph, keyer, content, n=20)
    content.close()
    lineage = GraphDump.take(session_graph)
    tokens = make_tokens(settings.state_dir / "api-tokens.json")
    attested = _attested_request(settings.state_dir, keyer)
    log_file = tmp / "console.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with Server(create_app(settings), free_port()) as server:
            yield {"url": server.url, "settings": settings, "tokens": tokens, "graph": session_graph,
                   "dataset": plan.version.id, "attested": attested, "log": log_file, "lineage": lineage}
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


@pytest.fixture
def console(console_world):
    """The served console, its lineage in the graph (written back if a test elsewhere emptied the graph)."""
    graph = console_world["graph"]
    if not graph.read("MATCH (:Deployment {id: 'support-bot'}) MATCH (r:Record) RETURN count(r) AS n")[0]["n"]:
        console_world["lineage"].load(graph)
    return console_world


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright (no browser download); `make test` installs it when missing. One per
    module: Playwright's event loop is the main thread's while it runs, and must be gone before the Dagster tests
    that follow (they warned of a coroutine never awaited under a session-long one)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (make test does it as root), or set "
                    "LETHE_TEST_CHROMIUM to a Chromium binary")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where every page's screenshot goes (emptied once per test session)."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


ROLES = tuple(Role)
