"""Schema set-up: a uniqueness constraint per node key, and the indexes the queries seek on."""

from __future__ import annotations

from lineage.models import NODE_KINDS


def schema_statements() -> list[str]:
    """Idempotent DDL (`IF NOT EXISTS`) for every node kind and the lookups the queries need.

    Every index costs a write per record at ingest, so only seeks that queries make are indexed:
    records are found by id or content hash, never by state alone.
    """
    statements = [
        f"CREATE CONSTRAINT {kind.label.lower()}_key IF NOT EXISTS "
        f"FOR (n:{kind.label}) REQUIRE n.{kind.key_property} IS UNIQUE"
        for kind in NODE_KINDS.values()
    ]
    statements += [
        "CREATE INDEX record_content_sha256 IF NOT EXISTS FOR (n:Record) ON (n.content_sha256)",
        "CREATE INDEX erasure_request_status IF NOT EXISTS FOR (n:ErasureRequest) ON (n.status)",
        "CREATE INDEX adapter_state IF NOT EXISTS FOR (n:Adapter) ON (n.state)",
    ]
    return statements
