"""Reading record batch files (JSONL or Parquet) as numbered JSON lines for validation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

from lineage.errors import LineageError
from lineage.limits import iter_lines_bounded
from lineage.record_batch import IngestRecord

RECORD_COLUMNS = set(IngestRecord.model_fields)
REQUIRED_COLUMNS = {name for name, f in IngestRecord.model_fields.items() if f.is_required()}


class BatchFileError(LineageError):
    """A batch file cannot be read as records at all (empty, unknown format or columns)."""


def json_default(value: object) -> str:
    """Dates and times in a record as ISO 8601 text (json.dumps' `default`)."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"cannot represent {type(value).__name__} in a record")


def read_batch_lines(path: Path) -> list[tuple[int, bytes]]:
    """(line number, raw JSON) of every non-blank record in a .jsonl or .parquet file."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".json", ".ndjson"}:
        lines = list(iter_lines_bounded(path))
    elif suffix == ".parquet":
        lines = list(_parquet_lines(path))
    else:
        raise BatchFileError(f"{path}: unknown batch format {suffix!r}; use .jsonl or .parquet")
    if not lines:
        raise BatchFileError(f"{path}: the batch is empty; it needs at least one record")
    return lines


def _parquet_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    columns = set(table.column_names)
    unknown, missing = sorted(columns - RECORD_COLUMNS), sorted(REQUIRED_COLUMNS - columns)
    if unknown or missing:
        raise BatchFileError(
            f"{path}: " + "; ".join(filter(None, [
                f"unknown column(s) {unknown}" if unknown else "",
                f"missing required column(s) {missing}" if missing else ""]))
            + f". Record columns are {sorted(RECORD_COLUMNS)}; rename or drop the others.")
    for n, row in enumerate(table.to_pylist(), 1):
        row = {k: v for k, v in row.items() if v is not None}
        yield n, json.dumps(row, default=json_default).encode()
