"""False alarms across a run: Holm's step-down over the records of every request, and the cause of a flag.

A probe gives each record a p-value per score against the holdout; a record's p-value is the smallest of
them times the number of scores (Bonferroni). A day's run judges the records of many requests at once:
at alpha 0.01 per request, 30 requests would turn about one perfect erasure in four `incomplete` by
chance. Holm's step-down over every (adapter, record) pair of the run keeps the chance of any false flag
in the whole run at alpha, and is uniformly more powerful than Bonferroni over the same family.

A record that still flags after an exact remedy (its text provably absent from the new manifest) is
looked into before it turns a verdict: a near-duplicate of it in the new training set, or the person's
identifiers or secrets left there (the residual sweep), is a cause, and the verdict is `incomplete`.
With no cause found, the flag is reported with its corrected p-value and the verdict stays `erased`.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from unlearning.probes.report import ProbeReport, RecordProbe

__all__ = ["FamilyRecord", "StatisticsResult", "holm_adjusted", "holm_flags", "record_p_value"]

METHOD = "holm"


class FamilyRecord(BaseModel):
    """One (adapter, record) test of the run: its p-value, Holm-adjusted p-value, flag and cause."""

    model_config = ConfigDict(extra="forbid")

    phase: str  # before | after
    adapter: str
    record_id: str
    p_value: float  # the record's p-value (smallest over scores, times the number of scores)
    p_adjusted: float
    flagged: bool
    cause: str | None = None  # after an exact remedy: why a flag is not chance (None: no cause found)


class StatisticsResult(BaseModel):
    """The statistics step: the run's family, and this request's records in it."""

    model_config = ConfigDict(extra="forbid")

    method: str
    alpha: float
    run_requests: list[str]
    tests_before: int
    tests_after: int
    flags_before: int  # in the whole run
    flags_after: int
    records: list[FamilyRecord]  # this request's own

    def flagged_after(self) -> list[FamilyRecord]:
        return [r for r in self.records if r.phase == "after" and r.flagged]


def record_p_value(record: RecordProbe, scores: int) -> float | None:
    """A probed record's p-value: its smallest per-score p-value times the number of scores (capped at 1)."""
    values = [float(p.value) for p in record.p_values.values()]
    return min(1.0, min(values) * max(1, scores)) if values else None


def holm_adjusted(p_values: Sequence[float], family_size: int | None = None) -> list[float]:
    """Holm's adjusted p-values, in the input order; `family_size` >= len(p_values) counts tests made
    elsewhere in the same family (conservative for these)."""
    m = len(p_values) if family_size is None else max(family_size, len(p_values))
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def holm_flags(report: ProbeReport, record_ids: Collection[str], alpha: float, family_size: int) -> tuple[str, ...]:
    """Records of a ProbeReport flagged by Holm at `alpha` in a family of `family_size` tests (for escalation)."""
    scores = len(report.scores)
    probed = [(r.record_id, record_p_value(r, scores)) for r in report.records
              if r.record_id in record_ids]
    probed = [(rid, p) for rid, p in probed if p is not None]
    adjusted = holm_adjusted([p for _, p in probed], family_size)
    return tuple(rid for (rid, _), q in zip(probed, adjusted) if q <= alpha)


def form_key(adapter: str, form: str | None) -> str:
    """The name a served form's tests carry in the run's family: `adapter@form` (the adapter alone: as trained)."""
    return adapter if form is None else f"{adapter}@{form}"


def adapter_of(key: str) -> str:
    """The adapter of a family key (`form_key`)."""
    return key.split("@", 1)[0]


def form_flags(report: ProbeReport, record_ids: Collection[str],
               family_size: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Records flagged by Holm in any form of a report (the adapter as trained and each served form), in a
    family of `family_size` records times the forms probed; and the forms that flagged (as trained: "fp32"
    or the device's dtype). For escalation."""
    forms = report.variants()
    by_form = {name or report.dtype: holm_flags(r, record_ids, report.config.alpha, family_size * len(forms))
               for name, r in forms.items()}
    flagged = {rid for ids in by_form.values() for rid in ids}
    return (tuple(r.record_id for r in report.records if r.record_id in flagged),
            tuple(name for name, ids in by_form.items() if ids))


def leaked_people(report: ProbeReport) -> dict[str, list[str]]:
    """Person label -> the forms (as in `form_flags`) and shard adapters whose generations gave away their
    identifiers or secrets beyond the held-out people's chance rate (unlearning.probes.extraction)."""
    leaked: dict[str, list[str]] = {}
    for name, reports in report.extraction_variants().items():
        for label, extraction in reports.items():
            if extraction.leaked:
                leaked.setdefault(label, []).append(name or report.dtype)
    return leaked


def still_flagged(report: ProbeReport, scope: Sequence[str], family: int,
                  people: Mapping[str, tuple] | None) -> tuple[str, ...]:
    """Scope records a probe report still flags (Holm over the run, in any form), and the records of every
    person whose generations still give them away (`people`: label -> (record ids, ...); all the scope's
    records when the people are not known). For escalation."""
    flagged = set(form_flags(report, set(scope), family)[0])
    for label in leaked_people(report):
        flagged |= set(people[label][0]) if people and label in people else set(scope)
    return tuple(rid for rid in scope if rid in flagged)


def family_tests(reports: Iterable[tuple[str, str, ProbeReport, Collection[str]]]) -> dict[tuple[str, str, str], float]:
    """(phase, adapter, record) -> p-value over (phase, adapter, probe report, records) of every request;
    a record two requests share counts once."""
    tests = {}
    for phase, adapter, report, records in reports:
        scores = len(report.scores) or 1
        for record in report.records:
            if record.record_id in records:
                p = record_p_value(record, scores)
                if p is not None:
                    tests[(phase, adapter, record.record_id)] = p
    return tests


def adjust_family(tests: Mapping[tuple[str, str, str], float], alpha: float) -> dict[tuple[str, str, str], tuple[float, bool]]:
    """Each test's Holm-adjusted p-value within its phase, and whether it flags at alpha."""
    out = {}
    for phase in ("before", "after"):
        keys = [k for k in tests if k[0] == phase]
        for key, q in zip(keys, holm_adjusted([tests[k] for k in keys])):
            out[key] = (q, q <= alpha)
    return out


def copies_in_training(flagged: Mapping[str, str], training: Mapping[str, str], index_search,
                       confirm) -> dict[str, str]:
    """Record id -> cause, for flagged records with a confirmed near-duplicate among the training texts.

    `index_search(texts) -> list of (query id, match id, cosine)`; `confirm(record id, match id) -> str|None`
    says what confirms a pair beyond cosine (near-verbatim, rare spans), or None.
    """
    causes = {}
    for query, match, cosine in index_search(flagged):
        if query in causes or match not in training:
            continue
        confirmation = confirm(query, match)
        if confirmation:
            causes[query] = (f"a near-duplicate of it is in the new training set: record {match} "
                             f"(cosine {cosine:.3f}, {confirmation})")
    return causes


def near_verbatim(a: str, b: str) -> float:
    """difflib ratio of two texts with whitespace and case normalized."""
    def norm(text: str) -> str:
        return " ".join(text.split()).casefold()
    return difflib.SequenceMatcher(None, norm(a), norm(b)).ratio()
