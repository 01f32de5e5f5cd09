"""The connection to Neo4j: one driver per store, managed transactions, errors translated once."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, LiteralString

import neo4j
from neo4j import GraphDatabase, RoutingControl
from neo4j.exceptions import AuthError, ClientError, ServiceUnavailable, SessionExpired

from lineage.errors import GraphUnavailableError
from lineage.store.schema import schema_statements

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5_000


@dataclass
class WriteSummary:
    """Counters summed over the transactions of one batched write."""

    nodes_created: int = 0
    relationships_created: int = 0
    properties_set: int = 0
    rows: int = 0

    def add(self, counters: neo4j.SummaryCounters, rows: int) -> None:
        self.nodes_created += counters.nodes_created
        self.relationships_created += counters.relationships_created
        self.properties_set += counters.properties_set
        self.rows += rows

    def __add__(self, other: "WriteSummary") -> "WriteSummary":
        return WriteSummary(self.nodes_created + other.nodes_created,
                            self.relationships_created + other.relationships_created,
                            self.properties_set + other.properties_set, self.rows + other.rows)

    @property
    def changed(self) -> bool:
        """True when the write created anything or set any property."""
        return bool(self.nodes_created or self.relationships_created or self.properties_set)


@contextmanager
def _translated(uri: str, user: str) -> Iterator[None]:
    try:
        yield
    except AuthError as exc:
        raise GraphUnavailableError(
            f"Neo4j at {uri} refused user {user!r}: wrong user or password. "
            "Set NEO4J_USER and NEO4J_PASSWORD (the local server's password is in .lethe/neo4j/password)."
        ) from exc
    except (ServiceUnavailable, SessionExpired, OSError) as exc:
        raise GraphUnavailableError(
            f"cannot reach Neo4j at {uri}: {exc.__class__.__name__}. "
            "Start the local server with `lethe neo4j start`, or point NEO4J_URI at a running one."
        ) from exc


class GraphStore:
    """Lethe's lineage graph in one Neo4j database."""

    def __init__(self, uri: str, user: str, password: str, database: str = "neo4j",
                 connect_timeout_s: float = 5.0):
        self.uri, self.user, self.database = uri, user, database
        with _translated(uri, user):
            self._driver = GraphDatabase.driver(
                uri, auth=(user, password), connection_timeout=connect_timeout_s,
                connection_acquisition_timeout=connect_timeout_s * 2,
                max_transaction_retry_time=10.0,
                # Server notices (e.g. "relationship type MENTIONS does not exist yet") are noise here.
                notifications_min_severity="OFF",
            )

    @classmethod
    def connect(cls, uri: str, user: str, password: str, database: str = "neo4j") -> "GraphStore":
        """Open a store and check at once that the server answers and accepts the credentials."""
        store = cls(uri, user, password, database)
        try:
            store.server_version()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> "GraphStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def server_version(self) -> str:
        """The server's product and version, e.g. 'Neo4j/5.26.0'."""
        with _translated(self.uri, self.user):
            info = self._driver.get_server_info()
        return info.agent

    def apply_schema(self) -> None:
        """Create the constraints and indexes; safe to run any number of times."""
        for statement in schema_statements():
            self.execute(statement)
        self.execute("CALL db.awaitIndexes(300)")

    def execute(self, query: LiteralString, /, **params: Any) -> list[dict]:
        """Run one query in a managed write transaction (retried on transient errors)."""
        with _translated(self.uri, self.user):
            records, _, _ = self._driver.execute_query(query, params, database_=self.database)
        return [r.data() for r in records]

    def read(self, query: LiteralString, /, **params: Any) -> list[dict]:
        """Run one parameterized read query (routed to readers on a cluster)."""
        with _translated(self.uri, self.user):
            records, _, _ = self._driver.execute_query(
                query, params, database_=self.database, routing_=RoutingControl.READ
            )
        return [r.data() for r in records]

    def read_values(self, query: LiteralString, /, **params: Any) -> list[dict]:
        """Like `read`, for queries that return only plain values (no nodes, relationships, paths).

        Skips the driver's recursive `Record.data()` conversion, which costs about as much as the query
        itself on answers of a few thousand values (blast radius).
        """
        with _translated(self.uri, self.user):
            records, _, _ = self._driver.execute_query(
                query, params, database_=self.database, routing_=RoutingControl.READ
            )
        return [dict(r.items()) for r in records]

    def write_batches(
        self,
        query: LiteralString,
        rows: Sequence[dict | list],
        batch_size: int = DEFAULT_BATCH_SIZE,
        check: Callable[[list, list[dict]], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
        tx: neo4j.Transaction | None = None,
    ) -> WriteSummary:
        """`UNWIND $rows` a query over `rows`, one managed transaction per batch (or all in `tx`).

        `check(batch, result_rows)` runs inside the transaction and may raise to roll the batch back.
        Each batch commits on its own, so a rerun after a crash redoes only idempotent MERGEs.
        """
        summary = WriteSummary()

        def work(tx: neo4j.ManagedTransaction, batch: list[dict]) -> neo4j.SummaryCounters:
            result = tx.run(query, rows=batch)
            out = [r.data() for r in result]
            if check is not None:
                check(batch, out)
            return result.consume().counters

        with _translated(self.uri, self.user), contextlib.ExitStack() as stack:
            if tx is None:
                session = stack.enter_context(self._driver.session(database=self.database))
            for start in range(0, len(rows), batch_size):
                batch = list(rows[start:start + batch_size])
                counters = work(tx, batch) if tx is not None else session.execute_write(work, batch)
                summary.add(counters, len(batch))
                if on_batch is not None:
                    on_batch(len(batch))
        return summary

    def clear_all(self) -> None:
        """Delete every node and relationship (tests and benchmarks only), in batches."""
        with _translated(self.uri, self.user), self._driver.session(database=self.database) as session:
            session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 20000 ROWS").consume()

    @contextmanager
    def transaction(self) -> Iterator[neo4j.Transaction]:
        """One explicit transaction: everything written through it commits together, or nothing."""
        with _translated(self.uri, self.user), self._driver.session(database=self.database) as session:
            tx = session.begin_transaction()
            try:
                yield tx
            except BaseException:
                if not tx.closed():
                    tx.rollback()
                raise
            tx.commit()

    def run_in_transaction(self, work: Callable[[neo4j.ManagedTransaction], Any]) -> Any:
        """Run `work(tx)` in one managed write transaction: all of it commits, or none."""
        with _translated(self.uri, self.user), self._driver.session(database=self.database) as session:
            return session.execute_write(work)


__all__ = ["GraphStore", "WriteSummary", "ClientError"]
