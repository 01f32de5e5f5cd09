"""Fixtures of the CLI tests: `env`, the environment Lethe runs under there (its own state folder, the
session's Neo4j, a test pepper)."""

import pytest

PEPPER = "ab" * 32


@pytest.fixture
def env(tmp_path, neo4j_server, graph):
    return {"LETHE_STATE_DIR": str(tmp_path / "state"), "NEO4J_URI": neo4j_server.resolved_neo4j_uri(),
            "NEO4J_USER": neo4j_server.neo4j_user, "NEO4J_PASSWORD": neo4j_server.resolved_neo4j_password(),
            "LETHE_PEPPER": PEPPER}
