"""The local Neo4j launcher: errors when prerequisites are missing, and start is idempotent."""

import pytest

from lethe.errors import Neo4jServerError
from lethe.neo4j_server import LocalNeo4j
from lethe.settings import Settings


def test_start_is_idempotent_and_reports_the_running_server(neo4j_server):
    if not neo4j_server.uses_local_server:
        pytest.skip("NEO4J_URI points at an external server")
    server = LocalNeo4j(neo4j_server)
    first = server.status()
    again = server.start()
    assert again.running and again.pid == first.pid and again.uri == first.uri


def test_missing_java_is_named_with_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    server = LocalNeo4j(Settings(state_dir=tmp_path / "state", local_bolt_port=17999))
    with pytest.raises(Neo4jServerError, match="`java` was not found.*openjdk-17"):
        server.start()


def test_stop_only_touches_the_process_lethe_started(tmp_path):
    server = LocalNeo4j(Settings(state_dir=tmp_path / "state", local_bolt_port=17998))
    server.home.mkdir(parents=True)
    server.pid_file.write_text("1")  # pid 1 is not our launcher
    assert server.stop() is False
    assert not server.pid_file.exists()
