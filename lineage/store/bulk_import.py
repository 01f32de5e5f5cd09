"""First loads through Neo4j's offline importer: the lineage vocabulary written as CSV files.

The transactional writers (`UNWIND` + `MERGE`) cost Neo4j ~50 µs of CPU per indexed node and ~35 µs
per relationship on a 2-core machine, whatever the batch size (measured: `bench.lineage_ingest`). The
importer (`neo4j-admin database import full`) writes the store files directly instead, at a fraction
of that, but only into an empty database while the server is stopped. `BulkLoad` collects the same
nodes and edges the `LineageWriter` takes (same method names, so `write_dataset_version` and friends
work with either) and writes the importer's input; the composition root runs the importer.

The files hold what the graph holds — ids, hashes, subject keys, never text or raw identifiers — and
live in a private folder that the caller deletes after the import.
"""

from __future__ import annotations

import csv
import gc
import os
import typing
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lineage.errors import NotFoundError
from lineage.models import EDGE_KINDS, NODE_KINDS, Edge, Node, Subject, check_edge_type, kind_of, node_row
from lineage.store.graph import WriteSummary

_TYPES = {bool: "boolean", int: "long", float: "double", str: "string"}


def _cell(value) -> str:
    """One CSV field, exactly: strings quoted (so "" stays an empty string), None empty (no property)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace('"', '""') + '"'


def _model_types(kind: type[Node]) -> dict[str, str]:
    """Property name → importer type, from the node model's fields (datetimes and enums are strings)."""
    types = {}
    for name, info in kind.model_fields.items():
        args = [a for a in (typing.get_args(info.annotation) or (info.annotation,)) if a is not type(None)]
        base = args[0] if len(args) == 1 else str
        types[name] = _TYPES.get(base, "string") if base in (bool, int, float) else "string"
    return types


def _prop_types(props: Iterable[dict], type_: str) -> dict[str, str]:
    """Property name → importer type, from the values of edge properties (one type per property)."""
    types: dict[str, str] = {}
    for row in props:
        for name, value in row.items():
            kind = _TYPES.get(type(value))
            if kind is None:
                raise TypeError(f"{type_}.{name}: the importer takes strings and numbers, not {type(value).__name__}")
            if types.setdefault(name, kind) != kind:
                raise TypeError(f"{type_}.{name} holds both {types[name]} and {kind} values")
    return types


@dataclass
class BulkFiles:
    """The importer's input: one (header, data) pair per node label and per relationship type."""

    nodes: dict[str, tuple[Path, Path]]
    relationships: dict[str, tuple[Path, Path]]
    node_count: int
    relationship_count: int
    multiline: bool = False  # a value holds a line break

    def importer_arguments(self) -> list[str]:
        # Each node's import id is its row number within its label (the key is an ordinary property):
        # integer ids spare the importer its string-id map, and the edge files shrink to pairs of numbers.
        args = ["--id-type=integer", f"--multiline-fields={'true' if self.multiline else 'false'}"]
        args += [f"--nodes={label}={header},{data}" for label, (header, data) in self.nodes.items()]
        return args + [f"--relationships={type_}={header},{data}"
                       for type_, (header, data) in self.relationships.items()]


class BulkLoad:
    """Nodes and edges for one first load, checked like the transactional writers check them."""

    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, dict]] = defaultdict(dict)  # label → key → properties
        self._edges: dict[str, dict[tuple[str, str], dict]] = defaultdict(dict)  # type → (source, target) → props

    # --- the LineageWriter's vocabulary -------------------------------------------------------------

    def nodes(self, nodes: Sequence[Node], on_batch: Callable[[int], None] | None = None) -> WriteSummary:
        """Add nodes of one kind; the same key twice keeps the first (like `MERGE ... ON CREATE`)."""
        if not nodes:
            return WriteSummary()
        kind = kind_of(nodes, "BulkLoad")
        table, before = self._nodes[kind.label], len(self._nodes[kind.label])
        for node in nodes:
            row = node_row(node)
            key = row[kind.key_property]
            if kind.mutable:
                table.setdefault(key, {}).update(row)
            else:
                table.setdefault(key, row)
        if on_batch is not None:
            on_batch(len(nodes))
        return WriteSummary(nodes_created=len(table) - before, rows=len(nodes))

    def edges(self, type_: str, edges: Sequence[Edge],
              on_batch: Callable[[int], None] | None = None) -> WriteSummary:
        """Add edges of one type (ends are checked when the files are written)."""
        check_edge_type(type_)
        table, before = self._edges[type_], len(self._edges[type_])
        for edge in edges:
            table.setdefault((edge.source, edge.target), {}).update(edge.props)
        if on_batch is not None:
            on_batch(len(edges))
        return WriteSummary(relationships_created=len(table) - before, rows=len(edges))

    def records_with_owners(self, rows: Sequence[dict],
                            on_batch: Callable[[int], None] | None = None) -> WriteSummary:
        """Records, their owners' Subject nodes and OWNS edges (rows as `LineageWriter.records_with_owners`)."""
        records, subjects = self._nodes["Record"], self._nodes[Subject.label]
        owns = self._edges["OWNS"]
        before = (len(records) + len(subjects), len(owns))
        for row in rows:
            records.setdefault(row["id"], {
                "id": row["id"], "content_sha256": row["content_sha256"], "source": row["source"],
                "created_at": row.get("created_at"), "content_ref": row.get("content_ref"), "state": "active"})
            for owner in row["owners"]:
                subjects.setdefault(owner["key"], {"key": owner["key"], "kind": owner["kind"]})
                owns.setdefault((owner["key"], row["id"]), {})
        if on_batch is not None:
            on_batch(len(rows))
        return WriteSummary(nodes_created=len(records) + len(subjects) - before[0],
                            relationships_created=len(owns) - before[1], rows=len(rows))

    # --- the importer's input ---------------------------------------------------------------------

    @property
    def node_count(self) -> int:
        return sum(len(t) for t in self._nodes.values())

    @property
    def relationship_count(self) -> int:
        return sum(len(t) for t in self._edges.values())

    def check_ends(self) -> None:
        """Every edge names nodes of this load (an empty database has no others)."""
        for type_, table in self._edges.items():
            kind = EDGE_KINDS[type_]
            sources, targets = self._nodes.get(kind.source, {}), self._nodes.get(kind.target, {})
            missing = [(s, t) for s, t in table if s not in sources or t not in targets]
            if missing:
                raise NotFoundError(f"{len(missing)} of {len(table)} {type_} edge(s) name a node that is not in "
                                    f"the load (e.g. one of {missing[:3]}); add the nodes first")

    def write_files(self, folder: Path) -> BulkFiles:
        """Write the header and data files into `folder` (created owner-only); check the edges first."""
        self.check_ends()
        # Millions of short-lived row lists: the cyclic collector would rescan them all (measured ~1.8x
        # slower at 1M records with it on); nothing here builds cycles.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._write_files(folder)
        finally:
            if enabled:
                gc.enable()

    def _write_files(self, folder: Path) -> BulkFiles:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        nodes, relationships, multiline = {}, {}, False
        numbers: dict[str, dict[str, int]] = {}  # label → key → import id (its row number)
        for label, table in self._nodes.items():
            if not table:
                continue
            kind = NODE_KINDS[label]
            types = _model_types(kind)
            columns = [kind.key_property] + sorted(c for c in types if c != kind.key_property)
            header = [f":ID({label})"] + [f"{c}:{types[c]}" for c in columns]
            numbers[label] = {key: n for n, key in enumerate(table)}
            rows = [[n, *(row.get(c) for c in columns)] for n, row in enumerate(table.values())]
            nodes[label], lines = self._write(folder, f"nodes-{label}", header, rows, numbered=1)
            multiline |= lines
        for type_, table in self._edges.items():
            if not table:
                continue
            kind = EDGE_KINDS[type_]
            sources, targets = numbers[kind.source], numbers[kind.target]
            types = _prop_types((p for p in table.values() if p), type_)
            columns = sorted(types)
            header = [f":START_ID({kind.source})", f":END_ID({kind.target})"] + [f"{c}:{types[c]}" for c in columns]
            rows = [[sources[s], targets[t], *(props.get(c) for c in columns)] for (s, t), props in table.items()]
            relationships[type_], lines = self._write(folder, f"rels-{type_}", header, rows, numbered=2)
            multiline |= lines
        return BulkFiles(nodes, relationships, self.node_count, self.relationship_count, multiline)

    @staticmethod
    def _write(folder: Path, stem: str, header: list[str], rows: list[list],
               numbered: int) -> tuple[tuple[Path, Path], bool]:
        """Write one table whose first `numbered` columns are import ids; also says whether a value spans
        lines (the importer must then parse slowly)."""
        header_path, data_path = folder / f"{stem}-header.csv", folder / f"{stem}.csv"
        header_path.write_text(",".join(header) + "\n", encoding="utf-8")
        with open(data_path, "w", encoding="utf-8", newline="") as out:
            # (The ids are left out of the check: 0 == False and 1 == True in Python.)
            if any("" in row or True in row[numbered:] or False in row[numbered:] for row in rows):
                # csv writes "" like None, and True as "True": the exact (slower) writer keeps them apart.
                out.writelines(",".join(_cell(v) for v in row) + "\n" for row in rows)
            else:
                csv.writer(out, lineterminator="\n").writerows(rows)
        data = data_path.read_bytes()
        return (header_path, data_path), data.count(b"\n") + data.count(b"\r") != len(rows)


__all__ = ["BulkFiles", "BulkLoad"]
