"""Shared by the benchmarks: a Neo4j graph to write into, and the one JSON line of figures.

Without NEO4J_URI the benchmarks run their own local server (port LETHE_BENCH_NEO4J_PORT, default
17688, state under .lethe-bench/) sized for a million records; with NEO4J_URI they use that server
and empty it first. LETHE_BENCH_KEEP_NEO4J=1 leaves the local server running afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from lethe.neo4j_server import LocalNeo4j
from lethe.settings import Settings
from lineage.store import GraphStore

ROOT = Path(__file__).resolve().parents[1]
STARTED: dict = {}  # figures of the local server's start in this process (its warm-up seconds)


def bench_settings() -> Settings:
    """NEO4J_URI's settings if set, else the benchmark's own local server (4g heap, 4g page cache)."""
    if os.environ.get("NEO4J_URI"):
        return Settings()
    port = int(os.environ.get("LETHE_BENCH_NEO4J_PORT", "17688"))
    return Settings(state_dir=ROOT / ".lethe-bench", local_bolt_port=port, local_heap="4g",
                    local_page_cache="4g")


def progress(message: str) -> None:
    """One line of progress on stderr (stdout carries only figures)."""
    print(message, file=sys.stderr, flush=True)


def say_plain(message: str) -> None:
    """A demo step's message (rich markup) as one plain line of progress."""
    progress(re.sub(r"\[/?bold\]", "", message))


class StatusLine:
    """A status context manager (the demo's `status`) that prints its message once: a benchmark has no live
    console."""

    def __init__(self, message: str):
        progress(message)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@contextmanager
def bench_graph(empty: bool = True) -> Iterator[GraphStore]:
    """A GraphStore with the schema applied; `empty` wipes it first (a local server's data folder)."""
    settings = bench_settings()
    server = None if not settings.uses_local_server else LocalNeo4j(settings)
    if server is not None:
        if empty:
            server.stop()
            shutil.rmtree(server.home / "data", ignore_errors=True)
        progress(f"starting Neo4j on {server.uri} (state {server.home})")
        started = server.start()
        STARTED["warm_up_s"] = started.warm_up_s
        progress(f"started; page-cache warm-up {started.warm_up_s} s")
    try:
        with GraphStore.connect(settings.resolved_neo4j_uri(), settings.neo4j_user,
                                settings.resolved_neo4j_password(), settings.neo4j_database) as store:
            if empty and server is None:
                store.clear_all()
            store.apply_schema()
            yield store
    finally:
        if server is not None and not os.environ.get("LETHE_BENCH_KEEP_NEO4J"):
            server.stop()


def fresh_graph() -> AbstractContextManager[GraphStore]:
    """A GraphStore on an empty database with the schema applied."""
    return bench_graph(empty=True)


def emit(figures: dict) -> None:
    """Print the benchmark's figures as one JSON line (sorted keys), the last line of stdout."""
    print(json.dumps(figures, sort_keys=True), flush=True)
