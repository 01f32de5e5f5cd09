"""What the report page shows beyond the report model's own fields: charts, probe pairs, derived text.

Pure: from an `ErasureReport` to plain values; `templates/*.j2` turn them into markup and escape them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from erasure.report_charts import (SCORE_LABELS, BlastChart, DistributionChart, TimelineChart, blast_chart,
                                   distribution_chart, timeline_chart)
from erasure.report_formatting import num, when
from erasure.run_folder.results import ScopeRow
from erasure.report_model import ErasureReport, ProbeSummary

__all__ = ["SHOWN_IDS", "ProbePairView", "ReportView", "near_duplicate_of", "report_view", "shown_ids"]

SHOWN_IDS = 40  # ids listed per blast-radius stage on the page (the JSON has them all)
_FIGURES = ["flagged records", "alpha (threshold)", "holdout records", "holdout false-flag rate"]


@dataclass(frozen=True)
class ProbePairView:
    """An adapter probed before and its replacement after: figures side by side, one chart per score."""

    title: str
    rows: list[tuple[str, Any, Any]]  # label, before, after
    charts: list[DistributionChart]
    undrawn: dict[str, str]  # score -> why it has no chart
    notes: list[str]


@dataclass(frozen=True)
class ReportView:
    """The report page's derived parts."""

    extension: str
    timeline_chart: TimelineChart
    blast_chart: BlastChart | None
    probe_pairs: list[ProbePairView]


def near_duplicate_of(row: ScopeRow) -> str:
    """'rec-0104 (minhash)': the record a near-duplicate resembles and what confirmed it; '—' when neither."""
    return " ".join(filter(None, [row.matched, row.confirmation and f"({row.confirmation})"])) or "—"


def shown_ids(ids: list[str]) -> str:
    """The first SHOWN_IDS ids, and how many more there are."""
    more = f" … and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    return ", ".join(ids[:SHOWN_IDS]) + more


def _auc(summary: ProbeSummary | None, score: str) -> str:
    """'0.930 [0.850, 0.990] (n=20/69, people 5/14)' or '—'."""
    auc = summary.auc.get(score) if summary else None
    if auc is None:
        return "—"
    people = "" if auc.forget_people is None else f", people {auc.forget_people}/{auc.holdout_people}"
    return f"{auc.value:.3f} [{auc.ci_low:.3f}, {auc.ci_high:.3f}] (n={auc.forget}/{auc.holdout}{people})"


def _figures(s: ProbeSummary | None) -> list[Any]:
    """The figures of one probe, in the order of _FIGURES."""
    if s is None:
        return ["—"] * len(_FIGURES)
    return [f"{len(s.flagged)} of {s.records}", f"{num(s.alpha)} ({s.per_score_threshold:.4g} per score)",
            s.holdout_ids, num(s.holdout_false_flag_rate)]


def _probe_pair(before: ProbeSummary | None, after: ProbeSummary | None, after_reached: bool) -> ProbePairView:
    """Flagged counts, AUCs and distributions of an adapter before and its replacement after."""
    absent = "not reached" if not after_reached else "not probed"
    title = f"{before.adapter if before else '—'} → {after.adapter if after else absent}"
    rows = list(zip(_FIGURES, _figures(before), _figures(after)))
    scores = list(dict.fromkeys([*(before.auc if before else {}), *(after.auc if after else {})]))
    rows += [(f"AUC {SCORE_LABELS.get(s, s)} [95% CI]", _auc(before, s), _auc(after, s)) for s in scores]
    if any(s is not None and s.generation for s in (before, after)):
        rows.append(("generations (extraction)", *(s.generation or "—" if s else "—" for s in (before, after))))
    for form in dict.fromkeys([*(before.forms if before else {}), *(after.forms if after else {})]):
        served = [s.forms.get(form) if s else None for s in (before, after)]
        label = "after relearning on retained records" if form == "relearned" else f"served as {form}"
        rows.append((f"{label}: flagged", *(f"{len(f.flagged)} of {f.records}" if f else "—" for f in served)))
        rows.append((f"{label}: AUC ratio", *(_auc(f, "ratio") for f in served)))
        if any(f is not None and f.generation for f in served):
            rows.append((f"{label}: generations", *(f.generation or "—" if f else "—" for f in served)))
    for shard in dict.fromkeys([*(before.shard_generations if before else {}),
                                *(after.shard_generations if after else {})]):
        rows.append((f"{shard} adapter (at rest): generations",
                     *((s.shard_generations.get(shard) if s else None) or "—" for s in (before, after))))
    drawn = list(dict.fromkeys([*(before.distributions if before else {}), *(after.distributions if after else {})]))
    charts = [distribution_chart(score, [("before", before.distributions.get(score) if before else None),
                                         ("after", after.distributions.get(score) if after else None)])
              for score in drawn]
    undrawn = {**(before.undrawn if before else {}), **(after.undrawn if after else {})}
    notes = [f"{phase}: {n}" for phase, s in (("before", before), ("after", after)) if s for n in s.notes]
    return ProbePairView(title=title, rows=rows, charts=charts, undrawn=undrawn, notes=notes)


def report_view(report: ErasureReport) -> ReportView:
    """The derived parts of the report page."""
    r, probes = report.request, report.probes
    extension = f"to {when(r.extended_due_at)}: {r.extension_reason}" if r.extended_due_at else "none"
    pairs = [_probe_pair((probes.before or {}).get(p.before) if p.before else None,
                         (probes.after or {}).get(p.after) if p.after else None, probes.after is not None)
             for p in probes.pairs]
    return ReportView(extension=extension, timeline_chart=timeline_chart(report.timeline),
                      blast_chart=blast_chart(report.blast_radius) if report.blast_radius else None,
                      probe_pairs=pairs)
