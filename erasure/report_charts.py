"""Where the report's charts put things: the timeline, the blast-radius chain, the score distributions.

Pure geometry from the report model; `templates/charts.svg.j2` draws these views as inline SVG, so the
page needs nothing from the network. Coordinates are pixels from the chart's top left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from erasure.report_formatting import days
from erasure.report_model import BlastSection, Distribution, Timeline

__all__ = ["SCORE_LABELS", "BlastChart", "DistributionChart", "Label", "TimelineChart", "blast_chart",
           "distribution_chart", "timeline_chart"]

SCORE_LABELS = {"ratio": "−log(NLL ratio)", "min_k_pp": "Min-K%++", "es": "extraction strength",
                "em": "exact memorization", "shard_reference": "shard reference (own shard vs the others)"}


@dataclass(frozen=True)
class Label:
    """A piece of text on a chart."""

    x: float
    y: float
    text: str
    anchor: str = "start"
    fill: str = "#333"
    weight: str | None = None
    size: str | None = None


@dataclass(frozen=True)
class TimelineChart:
    """A bar from receipt to the deadline (red past it), the steps as dots, and where the request stands."""

    width: int
    height: int
    pad: int
    y: int  # top of the bar
    deadline_x: float
    overrun_x: float | None  # end of the red bar, when anything happened after the deadline
    due_x: float | None  # the first due date, when it was extended
    step_xs: list[float]
    as_of_x: float
    colour: str
    due_label: Label | None
    deadline_label: Label
    received_label: Label
    step_labels: list[Label]
    as_of_label: Label
    status_label: Label


@dataclass(frozen=True)
class BlastBox:
    """One stage of the chain."""

    left: int
    centre: float
    fill: str
    count: str
    name: str


@dataclass(frozen=True)
class BlastChart:
    """The chain records → … → deployments as boxes with counts, arrows between them."""

    width: int
    height: int
    top: int
    box: int
    gap: int
    boxes: list[BlastBox]


@dataclass(frozen=True)
class Dot:
    """A scope record's score."""

    cx: float
    cy: int
    colour: str
    record_id: str


@dataclass(frozen=True)
class HoldoutBox:
    """The holdout's quantiles as x positions: whiskers q05–q95, box q25–q75, a line at the median."""

    q05: float
    q95: float
    q25: float
    width: float  # of the quartile box, at least a pixel
    median: float


@dataclass(frozen=True)
class DistributionRow:
    """One probe (before or after): the holdout's box and the records' dots."""

    label: Label
    yc: int  # the row's centre line
    box: HoldoutBox | None  # None when the probe was not reached
    points: list[Dot]


@dataclass(frozen=True)
class DistributionChart:
    """One score before and after, on one axis."""

    score: str
    width: int
    height: int
    left: int
    right: int
    rows: list[DistributionRow]
    axis_y: int
    ticks: list[Label]
    caption: Label


def timeline_chart(timeline: Timeline) -> TimelineChart:
    """The timeline's geometry: the span runs from receipt to the latest of deadline, now and the steps."""
    width, pad, y = 760, 24, 52
    finished = [m.finished_at for m in timeline.steps if m.finished_at is not None]
    start = timeline.received_at
    end = max([timeline.deadline, timeline.as_of, *finished])
    span = max((end - start).total_seconds(), 1.0)

    def x(moment: datetime) -> float:
        return pad + (moment - start).total_seconds() / span * (width - 2 * pad)

    def label(px: float, ty: float, text: str, colour: str) -> Label:
        # Labels near an edge are anchored inside the chart so they are not clipped.
        anchor = "start" if px < pad + 60 else "end" if px > width - pad - 60 else "middle"
        return Label(px, ty, text, anchor, colour)

    deadline, colour = x(timeline.deadline), "#b3261e" if timeline.overdue else "#1f4e79"
    extended = timeline.due_at != timeline.deadline
    status = days(timeline.days_left) + (" at attestation" if timeline.finished else "")
    step_xs, step_labels = _step_marks(timeline, x, lambda px, text: label(px, y + 52, text, "#1f4e79"))
    return TimelineChart(
        width=width, height=112, pad=pad, y=y, deadline_x=deadline,
        overrun_x=x(end) if end > timeline.deadline else None, due_x=x(timeline.due_at) if extended else None,
        step_xs=step_xs, as_of_x=x(timeline.as_of), colour=colour,
        due_label=label(x(timeline.due_at), y - 8, "first due", "#555") if extended else None,
        deadline_label=label(deadline, y + 36, f"deadline {timeline.deadline:%Y-%m-%d}", "#1b5e20"),
        received_label=Label(pad, y + 36, f"received {timeline.received_at:%Y-%m-%d}"), step_labels=step_labels,
        as_of_label=label(x(timeline.as_of), y - 16, "attested" if timeline.finished else "now", colour),
        status_label=Label(pad, 16, status, "start", colour, weight="600"))


def _step_marks(timeline: Timeline, x: Callable[[datetime], float],
                label: Callable[[float, str], Label]) -> tuple[list[float], list[Label]]:
    """Reached steps as dots, numbered; steps too close to tell apart share one label."""
    marks = sorted((x(m.finished_at), i + 1) for i, m in enumerate(timeline.steps) if m.finished_at is not None)
    clusters: list[list[tuple[float, int]]] = []
    for mark in marks:
        if clusters and mark[0] - clusters[-1][0][0] < 40:
            clusters[-1].append(mark)
        else:
            clusters.append([mark])
    labels = []
    for cluster in clusters:
        numbers = sorted(n for _, n in cluster)
        text = f"step {numbers[0]}" if len(numbers) == 1 else f"steps {numbers[0]}–{numbers[-1]}"
        labels.append(label(cluster[0][0], text))
    return [px for px, _ in marks], labels


def blast_chart(blast: BlastSection) -> BlastChart:
    """The chain's boxes, left to right."""
    box, gap, top = 112, 24, 10
    boxes = [BlastBox(left=10 + i * (box + gap), centre=10 + i * (box + gap) + box / 2,
                      fill="#e3eefa" if stage.count else "#f0f0f0", count=f"{stage.count:,}", name=stage.name)
             for i, stage in enumerate(blast.stages)]
    width = 20 + len(blast.stages) * (box + gap) - gap
    return BlastChart(width=width, height=80, top=top, box=box, gap=gap, boxes=boxes)


def distribution_chart(score: str, rows: Sequence[tuple[str, Distribution | None]]) -> DistributionChart:
    """Per row (before, after): the holdout box (q05–q95 whiskers, quartile box, median) and the scope records."""
    left, right, row_h = 90, 620, 46
    present = [d for _, d in rows if d is not None]
    values = [float(d.holdout[q]) for d in present for q in ("q05", "q95")] + \
             [p.value for d in present for p in d.points]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    margin = (hi - lo) * 0.06 or 1.0
    lo, hi = lo - margin, hi + margin

    def x(value: float) -> float:
        return left + (value - lo) / (hi - lo) * (right - left)

    drawn = []
    for i, (name, dist) in enumerate(rows):
        yc = 22 + i * row_h
        box = None if dist is None else _holdout_box(dist, x)
        # Dots are spread over five lines so that records with close scores stay visible.
        points = [] if dist is None else [Dot(x(p.value), yc + (j % 5 - 2) * 3, "#b3261e" if p.flagged else "#1f4e79",
                                              p.record_id) for j, p in enumerate(dist.points)]
        drawn.append(DistributionRow(Label(8, yc + 4, name, fill="#1b1b1b", weight="600"), yc, box, points))
    axis = 22 + len(rows) * row_h - 14
    ticks = [Label(x(value), axis + 13, f"{value:.3g}", anchor, "#555")
             for value, anchor in ((lo, "start"), ((lo + hi) / 2, "middle"), (hi, "end"))]
    caption = Label(right, axis + 26, f"{SCORE_LABELS.get(score, score)}: more memorized →", "end", "#555")
    return DistributionChart(score=score, width=right + 20, height=axis + 32, left=left, right=right, rows=drawn,
                             axis_y=axis, ticks=ticks, caption=caption)


def _holdout_box(dist: Distribution, x: Callable[[float], float]) -> HoldoutBox:
    """The holdout's quantiles placed on the axis."""
    q = {k: x(float(dist.holdout[k])) for k in ("q05", "q25", "median", "q75", "q95")}
    return HoldoutBox(q05=q["q05"], q95=q["q95"], q25=q["q25"], width=max(q["q75"] - q["q25"], 1), median=q["median"])
