"""A team's own files (JSONL, Parquet, CSV; their column names, chat records) as Lethe batch files.

`import_batch` reads the file, maps each row with the project's [records] table (lineage.mapping),
renders chat records with the base model's chat template, validates every record (the whole file is
refused with each bad line named by the user's own column), and writes it, owner-only, into the
batches folder as a JSONL batch named after its content: importing the same file with the same mapping
again finds it there and writes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lineage.batch_files import BatchFileError, json_default
from lineage.errors import BatchRejectedError, InvalidRecordError
from lineage.keys import SubjectKeyer
from lineage.limits import InputLimitError, iter_lines_bounded, loads_json_bounded
from lineage.local_files import private_dir, write_private_bytes
from lineage.mapping import ChatRenderer, RecordMapping, canonical_record
from lineage.record_batch import SUBJECT_FIELDS, parse_lines

__all__ = ["ImportedBatch", "chat_renderer", "import_batch", "read_rows"]

CSV_MAX_FIELD = 4 * 1024 * 1024  # the same bound as a JSONL record line


@dataclass(frozen=True)
class ImportedBatch:
    source: Path
    name: str  # the batch file's name in the batches folder
    records: int  # lines of the batch file (exact repeats are dropped when it is ingested)
    new: bool  # False: the same file and mapping were imported before


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    for number, raw in iter_lines_bounded(path):
        try:
            yield number, loads_json_bounded(raw.decode("utf-8"), f"line {number}")
        except (UnicodeDecodeError, json.JSONDecodeError, InputLimitError) as exc:
            raise BatchRejectedError(str(path), [InvalidRecordError(number, "line", f"not a JSON object: {exc}")])


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    yield from enumerate(pq.read_table(path).to_pylist(), 1)


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(CSV_MAX_FIELD)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, {k: v for k, v in row.items() if k is not None and v != ""}


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or row number, row) of a .jsonl, .parquet or .csv file."""
    readers = {".jsonl": _jsonl_rows, ".ndjson": _jsonl_rows, ".json": _jsonl_rows, ".parquet": _parquet_rows,
               ".csv": _csv_rows}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise BatchFileError(f"{path}: unknown format {path.suffix!r}; give .jsonl, .parquet or .csv")
    return reader(path)


def chat_renderer(base_model_dir: Path | None) -> tuple[ChatRenderer, str]:
    """How chat records become the text trained on: the base model's chat template when its tokenizer has
    one, else ChatML. Returns the renderer and a digest of the template (part of the batch's name)."""
    template = None
    if base_model_dir is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir), local_files_only=True)
        template = getattr(tokenizer, "chat_template", None)
    if template:
        def render(messages: list[dict[str, str]]) -> str:
            return tokenizer.apply_chat_template(messages, tokenize=False)
        return render, hashlib.sha256(template.encode()).hexdigest()[:16]
    return _chatml, "chatml"


def _chatml(messages: list[dict[str, str]]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)



# Bumped when what a batch file holds changes (2: chat records carry their turns), so a file imported by an
# older Lethe is written again rather than taken for done.
BATCH_FORMAT = 2

# Without a [records] table, a record is Lethe's own shape and nothing else: a misspelt field ("subjet") is
# refused, never dropped (a dropped identifier would hide a person from their erasure).
LETHE_FIELDS = {"id", "text", "source", "subject", "created_at", "turns"} | {f"subject.{k}" for k in SUBJECT_FIELDS}


def _unknown_fields(row: dict, number: int) -> InvalidRecordError | None:
    unknown = sorted(set(row) - LETHE_FIELDS)
    if not unknown:
        return None
    return InvalidRecordError(number, unknown[0], f"unknown field(s) {unknown}; map your columns in lethe.toml's "
                                                  "[records] table (docs/your-data.md), or drop them")


def _canonical_lines(path: Path, mapping: RecordMapping, render: ChatRenderer | None
                     ) -> list[tuple[int, bytes]]:
    lines, errors, found = [], [], set()
    strict = mapping == RecordMapping()
    for number, row in read_rows(path):
        if not isinstance(row, dict):
            errors.append(InvalidRecordError(number, "line", f"expected an object, got {type(row).__name__}"))
            continue
        unknown = _unknown_fields(row, number) if strict else None
        if unknown is not None:
            errors.append(unknown)
            continue
        try:
            record = canonical_record(row, mapping, number, render)
        except InvalidRecordError as exc:
            errors.append(exc)
            continue
        found.update(record["subject"])
        lines.append((number, json.dumps(record, default=json_default, ensure_ascii=False).encode()))
    if errors:
        raise BatchRejectedError(str(path), errors)
    if not lines:
        raise BatchFileError(f"{path}: the file has no records")
    # A subject column the mapping names but no row has is a typo, not a file without such people.
    missing = [column for field, column in mapping.subject.items() if field not in found]
    if missing:
        raise BatchFileError(f"{path}: the [records.subject] column(s) {missing} are in no row; check the "
                             "mapping's column names (a dotted path reaches into objects)")
    return lines


def _in_users_words(path: Path, exc: BatchRejectedError, mapping: RecordMapping) -> BatchRejectedError:
    """The same problems, each naming the user's column rather than Lethe's field."""
    return BatchRejectedError(str(path), [InvalidRecordError(e.line, mapping.user_column(e.field), e.problem)
                                          for e in exc.errors])


def import_batch(path: Path, mapping: RecordMapping, batches_dir: Path, keyer: SubjectKeyer,
                 render: tuple[ChatRenderer, str] | None = None) -> ImportedBatch:
    """Map, render, validate and write `path` into `batches_dir` (see the module's docstring)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; give a .jsonl, .parquet or .csv file of records")
    renderer, template = render or (None, "none")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"\0{mapping.digest_input()}\0{template}\0{BATCH_FORMAT}".encode())
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem)[:80] or "batch"
    target = Path(batches_dir) / f"{stem}-{digest.hexdigest()[:12]}.jsonl"
    if target.is_file():  # the same file, mapping and template, validated and written before
        with target.open("rb") as written:
            return ImportedBatch(path, target.name, sum(1 for _ in written), new=False)
    lines = _canonical_lines(path, mapping, renderer)
    _, errors = parse_lines(lines, keyer)
    if errors:
        raise _in_users_words(path, BatchRejectedError(str(path), errors), mapping)
    private_dir(target.parent)  # only now: a refused file leaves no folder behind
    write_private_bytes(target, b"".join(raw + b"\n" for _, raw in lines))
    return ImportedBatch(path, target.name, len(lines), new=True)
