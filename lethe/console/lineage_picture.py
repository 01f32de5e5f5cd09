"""Where the blast-radius picture puts things: one column per kind of node, a box per node, a line per edge.

Records → shards → dataset versions → fine-tune runs → adapters (→ the adapters they merge into) →
deployments, left to right, from a `lineage.impact.BlastRadius`. A run is drawn from the dataset version whose
shards it trained on (the table beside the picture lists the exact shard–run pairs). A column shows at most
MAX_SHOWN nodes and says how many more there are. Pure geometry: `templates/lineage.svg.j2` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lineage.impact import BlastRadius

MAX_SHOWN = 12
BOX_W, BOX_H, COL_GAP, ROW_GAP, TOP = 150, 30, 46, 12, 34
LABEL_CHARS = 20


@dataclass(frozen=True)
class Node:
    id: str
    label: str  # the id, shortened to fit its box (the full id is the box's tooltip)
    x: float
    y: float
    muted: bool = False  # held out, erased or superseded


@dataclass(frozen=True)
class Column:
    title: str
    x: float
    nodes: list[Node]
    hidden: int  # nodes of this kind not drawn


@dataclass(frozen=True)
class Link:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class LineagePicture:
    width: int
    height: int
    columns: list[Column]
    links: list[Link]
    box_w: int = BOX_W
    box_h: int = BOX_H


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def _kinds(blast: BlastRadius) -> list[tuple[str, list[str], set[str]]]:
    """(column title, node ids, muted ids), left to right; an empty column of merged adapters is left out."""
    records = sorted({r for r, _ in blast.record_shard})
    merged_into = sorted({b for _, b in blast.adapter_merged})
    adapters = [a.id for a in blast.adapters if a.id not in merged_into]
    muted = {a.id for a in blast.adapters if a.state not in (None, "active")}
    kinds = [("records", records, set()), ("shards", list(blast.shards), set()),
             ("dataset versions", [d.id for d in blast.datasets], set()), ("fine-tune runs", list(blast.runs), set()),
             ("adapters", adapters, muted)]
    if merged_into:
        kinds.append(("merged adapters", merged_into, muted))
    kinds.append(("deployments", [d.id for d in blast.deployments], set()))
    return kinds


def _edges(blast: BlastRadius) -> list[tuple[str, str]]:
    dataset_of = {}
    for shard, dataset in blast.shard_dataset:
        dataset_of.setdefault(shard, set()).add(dataset)
    dataset_run = {(d, run) for run, shard in blast.run_shard for d in dataset_of.get(shard, ())}
    return [*blast.record_shard, *blast.shard_dataset, *sorted(dataset_run), *blast.run_adapter,
            *blast.adapter_merged, *blast.adapter_deployment]


def lineage_picture(blast: BlastRadius) -> LineagePicture:
    """The picture of a blast radius: columns of boxes and the edges between the boxes drawn."""
    columns, where = [], {}
    for i, (title, ids, muted) in enumerate(_kinds(blast)):
        x = 10 + i * (BOX_W + COL_GAP)
        shown = ids[:MAX_SHOWN]
        nodes = [Node(node_id, _short(node_id), x, TOP + j * (BOX_H + ROW_GAP), node_id in muted)
                 for j, node_id in enumerate(shown)]
        for node in nodes:
            where.setdefault(node.id, node)
        columns.append(Column(title, x, nodes, len(ids) - len(shown)))
    links = [Link(a.x + BOX_W, a.y + BOX_H / 2, b.x, b.y + BOX_H / 2)
             for a, b in ((where.get(s), where.get(t)) for s, t in _edges(blast)) if a and b and a.x < b.x]
    rows = max([len(c.nodes) + (1 if c.hidden else 0) for c in columns] + [1])
    height = TOP + rows * (BOX_H + ROW_GAP) + 10
    return LineagePicture(width=20 + len(columns) * (BOX_W + COL_GAP) - COL_GAP, height=height, columns=columns,
                          links=links)
