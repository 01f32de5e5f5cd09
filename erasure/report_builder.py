"""Building the report model from a checked run folder: pure, no I/O.

A step the request has not reached is reported as not reached, never filled in. Probe scores are turned
the way `unlearning`'s calibration turns them (`SCORES`), so that larger always means more memorized.
"""

from __future__ import annotations

import math
import shlex
from collections import Counter
from datetime import datetime
from pathlib import Path

from erasure.report_evidence import evidence_section
from erasure.report_inputs import STEPS, ReportInputs
from erasure.run_folder.results import AttestResult, ProbeReport, RemedyResult, ScopeResult, ServedAdapter, StepFile
from erasure.report_model import (BlastSection, Distribution, ErasureReport, FormSummary, Point, ProbePair,
                                  ProbeSection, ProbeSummary, RemedySection, RequestSection, ScopeSection,
                                  Stage, StepMark, Timeline, VerifySection, hmac_label)
from erasure.requests import FiledRequest
from lineage.impact import BlastRadius
from unlearning.probes.calibration import SCORES
from unlearning.probes.extraction import ExtractionReport

__all__ = ["as_of", "days_left", "make_report", "oriented_score"]

SECONDS_PER_DAY = 86400.0
_SPECS = {spec.name: spec for spec in SCORES}


def oriented_score(score: str, value: float | int | None) -> float | None:
    """A raw score on the holdout quantiles' scale (larger = more memorized); None if unknown or not finite."""
    spec = _SPECS.get(score)
    if spec is None or value is None or not math.isfinite(value):
        return None
    # math.log of one value, not calibration.oriented's numpy array: the report's figures stay as they were.
    out = math.log(max(float(value), 1e-12)) if spec.log_scale else float(value)
    return out if spec.higher_is_member else -out


def days_left(deadline: datetime, moment: datetime) -> int:
    """Whole days from `moment` to the deadline, rounded down: negative exactly when overdue."""
    return math.floor((deadline - moment).total_seconds() / SECONDS_PER_DAY)


def as_of(steps: dict[str, StepFile], now: datetime) -> tuple[datetime, bool]:
    """When the deadline is measured: the attestation's finish, or now; and whether it is finished."""
    attest = steps.get("attest")
    return (attest.finished_at, True) if attest is not None else (now, False)


def _request_section(request: FiledRequest) -> RequestSection:
    """The request, subject keys truncated and marked as HMACs."""
    keys = {kind: hmac_label(key) for kind, key in sorted(request.subject_keys.items())}
    return RequestSection(id=request.id, regime=request.regime.value, status=request.status.value,
                          review=request.review, requester=request.requester, received_at=request.received_at,
                          filed_at=request.filed_at, due_at=request.due_at, extended_due_at=request.extended_due_at,
                          extension_reason=request.extension_reason, deadline=request.deadline, subject_keys=keys)


def _timeline(inputs: ReportInputs, now: datetime) -> Timeline:
    """The steps against the deadline."""
    request, steps = inputs.request, inputs.steps
    moment, finished = as_of(steps, now)
    marks = [StepMark(step=n, reached=True, started_at=s.started_at, finished_at=s.finished_at, seconds=s.seconds)
             if (s := steps.get(n)) else StepMark(step=n, reached=False) for n in STEPS]
    days = days_left(request.deadline, moment)
    return Timeline(received_at=request.received_at, due_at=request.due_at, deadline=request.deadline, as_of=moment,
                    finished=finished, days_left=days, overdue=days < 0, steps=marks)


def _scope_section(result: ScopeResult) -> ScopeSection:
    """The scope table and its counts."""
    reasons = Counter(reason for r in result.records for reason in r.reasons)
    decisions = Counter(r.decision for r in result.records)
    in_scope = sum(decisions[d] for d in ("included", "included_reviewed"))
    return ScopeSection(records=result.records, per_reason=dict(sorted(reasons.items())),
                        per_decision=dict(sorted(decisions.items())), in_scope=in_scope,
                        subject_keys_found=result.subject_keys_found, scanned=result.scanned,
                        candidates=result.candidates, notes=result.notes)


def _blast_section(radius: BlastRadius, served: list[ServedAdapter]) -> BlastSection:
    """The chain's stages with counts and ids."""
    record_ids = sorted({record for record, _ in radius.record_shard})
    stages = [Stage(name="records", count=radius.records, ids=record_ids),
              Stage(name="shards", count=len(radius.shards), ids=radius.shards),
              Stage(name="dataset versions", count=len(radius.datasets), ids=[d.id for d in radius.datasets]),
              Stage(name="runs", count=len(radius.runs), ids=radius.runs),
              Stage(name="adapters", count=len(radius.adapters), ids=[a.id for a in radius.adapters]),
              Stage(name="deployments", count=len(radius.deployments), ids=[d.id for d in radius.deployments])]
    return BlastSection(start=radius.start, stages=stages, records_erased=radius.records_erased,
                        records_held_out=radius.records_held_out, depth_limit=radius.depth_limit,
                        depth_limit_hit=radius.depth_limit_hit, served_adapters=served)


def generation_line(probe: ProbeReport, person: str) -> str | None:
    """The extraction test of the request's person on one probe, in a line (counts only)."""
    return extraction_line(probe.extraction.get(person))


def extraction_line(found: ExtractionReport | None) -> str | None:
    """One person's extraction test in a line (counts only); None when none ran."""
    if found is None:
        return None
    p, chance = found.person, found.chance
    gave = ", ".join(f"{kind} {n}" for kind, n in sorted(p.hits.items())) or "nothing"
    cosine = "" if p.max_cosine is None else f"; max cosine {p.max_cosine:.2f}, {p.near_duplicates} near-duplicates"
    return (f"{'LEAKED: ' if found.leaked else ''}{p.leaking_samples} of {p.samples} samples ({p.leaking_greedy} "
            f"greedy) gave away {gave}{cosine}; held-out people: {chance.leaking_samples} of {chance.samples} "
            f"({chance.people} people); p = {found.p_value:.2g} at {found.alpha:.2g}")


def _probe_summary(probe: ProbeReport, person: str) -> ProbeSummary:
    """Flagged counts, AUCs and oriented distributions of one adapter's probe; the person's generations."""
    distributions, undrawn = {}, {}
    for score in probe.scores:
        stats = probe.holdout_stats.get(score, {})
        if score not in _SPECS:
            undrawn[score] = "the report does not know which way this score points"
        elif not stats.get("n") or "q05" not in stats:
            undrawn[score] = "no holdout statistics"
        else:
            points = [Point(record_id=r.record_id, value=v, flagged=r.flagged) for r in probe.records
                      if (v := oriented_score(score, r.scores.get(score))) is not None]
            distributions[score] = Distribution(holdout=stats, points=points)
    return ProbeSummary(adapter=probe.adapter, adapter_sha256=probe.adapter_sha256, records=len(probe.records),
                        flagged=probe.flagged, alpha=probe.config.alpha,
                        per_score_threshold=probe.per_score_threshold, holdout_ids=probe.holdout_ids,
                        holdout_false_flag_rate=probe.holdout_false_flag_rate,
                        auc={**probe.auc, **({"shard_reference": probe.shard_reference.auc}
                                             if probe.shard_reference is not None else {})},
                        distributions=distributions, undrawn=undrawn, notes=probe.notes,
                        generation=generation_line(probe, person),
                        forms={name: FormSummary(flagged=r.flagged, records=len(r.records), auc=r.auc,
                                                 generation=generation_line(r, person))
                               for name, r in probe.variants().items() if r is not probe},
                        shard_generations={label: line for label, reports in probe.shard_extraction.items()
                                           if (line := extraction_line(reports.get(person)))})


def _pairs(before: dict | None, after: dict | None, remedy: RemedyResult | None) -> list[ProbePair]:
    """Each adapter probed before with its replacement probed after (by the remedy's old → new)."""
    before, after = before or {}, after or {}
    replaced = {r.old_adapter: r.new_adapter for r in remedy.remedies} if remedy else {}
    pairs, used = [], set()
    for old in before:
        new = replaced.get(old) if replaced.get(old) in after else (old if old in after else None)
        pairs.append(ProbePair(before=old, after=new))
        used.add(new)
    return pairs + [ProbePair(before=None, after=new) for new in after if new not in used]


def _verify_section(result: AttestResult, folder: Path) -> VerifySection:
    """The offline verification command and what it checks against."""
    bundle = folder / result.bundle
    command = f"lethe attest verify {shlex.quote(str(bundle))} --keys {shlex.quote(result.registry)}"
    return VerifySection(command=command, bundle=str(bundle), bundle_present=bundle.is_file(),
                         registry=result.registry, envelope_sha256=result.envelope_sha256, log_index=result.log_index)


def make_report(inputs: ReportInputs, now: datetime) -> ErasureReport:
    """The report of a checked run folder (pure, but for whether the attestation bundle is in the folder)."""
    res = inputs.results
    probes = {k: {a: _probe_summary(p, inputs.request.id) for a, p in res[k].items()} if k in res else None
              for k in ("probe_before", "probe_after")}
    blast = _blast_section(*res["blast_radius"][:2]) if "blast_radius" in res else None
    training = res["blast_radius"][2] if "blast_radius" in res else None
    attest = res.get("attest")
    return ErasureReport(
        generated_at=now, request=_request_section(inputs.request), timeline=_timeline(inputs, now),
        not_reached=[n for n in STEPS if n not in inputs.steps],
        scope=_scope_section(res["scope"]) if "scope" in res else None, blast_radius=blast,
        probes=ProbeSection(before=probes["probe_before"], after=probes["probe_after"],
                            pairs=_pairs(res.get("probe_before"), res.get("probe_after"), res.get("remedy"))),
        remedy=RemedySection(**dict(res["remedy"])) if "remedy" in res else None, erased_at_source=res.get("erase_records"), verdict=attest.verdict if attest else None,
        evidence=evidence_section(res, training),
        verify=_verify_section(attest, inputs.folder) if attest else None)
