"""HTML of the erasure report and the register: one self-contained page each, inline CSS and SVG, no script.

Everything shown comes from the checked report model and goes through `html.escape`; the charts are
drawn here as SVG, so the page needs nothing from the network.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from erasure.html_parts import _days, _e, _missing, _num, _pairs, _Raw, _table, _when
from erasure.report_evidence import evidence_html

if TYPE_CHECKING:
    from erasure.report_inputs import Remedy
    from erasure.report_model import (BlastSection, Distribution, ErasureReport, ProbeSummary, RegisterRow,
                                      ScopeSection, Timeline, VerifySection)

__all__ = ["blast_svg", "distribution_svg", "render_register", "render_report", "timeline_svg"]

SCORE_LABELS = {"ratio": "−log(NLL ratio)", "min_k_pp": "Min-K%++", "es": "extraction strength",
                "em": "exact memorization"}
SHOWN_IDS = 40  # ids listed per blast-radius stage on the page (the JSON has them all)
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#1b1b1b;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,monospace;font-size:.92em}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
.missing{color:#777;font-style:italic}.badge{display:inline-block;padding:.2em .8em;border-radius:1em;
font-weight:600}.erased{background:#d4edda;color:#155724}.incomplete{background:#fff3cd;color:#7a5b00}
tr.overdue td{background:#fbe3e1}.late{color:#b3261e;font-weight:600}.ids{font-size:.85em;color:#444}
svg{display:block;margin:.6em 0;max-width:100%}svg text{font:11px system-ui,sans-serif}
"""


def _svg(width: int, height: int, body: str, label: str) -> str:
    """An inline SVG element."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">{body}</svg>')


def _text(x: float, y: float, text: str, anchor: str = "start", fill: str = "#333", extra: str = "") -> str:
    """An SVG text element."""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}" {extra}>{_e(text)}</text>'


# ---- charts ----

def timeline_svg(timeline: Timeline) -> str:
    """A bar from receipt to the deadline, the steps as marks, and where the request stands."""
    width, pad, y = 760, 24, 52
    finished = [m.finished_at for m in timeline.steps if m.finished_at is not None]
    start = timeline.received_at
    end = max([timeline.deadline, timeline.as_of, *finished])
    span = max((end - start).total_seconds(), 1.0)

    def x(moment: datetime) -> float:
        return pad + (moment - start).total_seconds() / span * (width - 2 * pad)

    def label(px: float, ty: float, text: str, colour: str) -> str:
        anchor = "start" if px < pad + 60 else "end" if px > width - pad - 60 else "middle"
        return _text(px, ty, text, anchor, colour)

    deadline, colour = x(timeline.deadline), "#b3261e" if timeline.overdue else "#1f4e79"
    parts = [f'<rect x="{pad}" y="{y}" width="{deadline - pad:.1f}" height="16" fill="#cfe8d5"/>']
    if end > timeline.deadline:
        parts.append(f'<rect x="{deadline:.1f}" y="{y}" width="{x(end) - deadline:.1f}" height="16" fill="#f4c7c3"/>')
    if timeline.due_at != timeline.deadline:
        parts.append(f'<line x1="{x(timeline.due_at):.1f}" x2="{x(timeline.due_at):.1f}" y1="{y - 4}" y2="{y + 20}" '
                     'stroke="#555" stroke-dasharray="3 2"/>')
        parts.append(label(x(timeline.due_at), y - 8, "first due", "#555"))
    parts.append(f'<line x1="{deadline:.1f}" x2="{deadline:.1f}" y1="{y - 8}" y2="{y + 24}" stroke="#1b5e20" '
                 'stroke-width="2"/>')
    parts.append(label(deadline, y + 36, f"deadline {timeline.deadline:%Y-%m-%d}", "#1b5e20"))
    parts.append(_text(pad, y + 36, f"received {timeline.received_at:%Y-%m-%d}"))
    parts.extend(_step_marks(timeline, x, y, label))
    parts.append(f'<line x1="{x(timeline.as_of):.1f}" x2="{x(timeline.as_of):.1f}" y1="{y - 12}" y2="{y + 18}" '
                 f'stroke="{colour}" stroke-width="2"/>')
    parts.append(label(x(timeline.as_of), y - 16, "attested" if timeline.finished else "now", colour))
    status = _days(timeline.days_left) + (" at attestation" if timeline.finished else "")
    parts.append(_text(pad, 16, status, "start", colour, 'font-weight="600"'))
    return _svg(width, 112, "".join(parts), "timeline against the deadline")


def _step_marks(timeline: Timeline, x, y: int, label) -> list[str]:
    """Reached steps as dots, numbered; steps too close to tell apart share one label."""
    marks = sorted((x(m.finished_at), i + 1) for i, m in enumerate(timeline.steps) if m.finished_at is not None)
    clusters: list[list[tuple[float, int]]] = []
    for mark in marks:
        if clusters and mark[0] - clusters[-1][0][0] < 40:
            clusters[-1].append(mark)
        else:
            clusters.append([mark])
    parts = [f'<circle cx="{px:.1f}" cy="{y + 8}" r="4" fill="#1f4e79"/>' for px, _ in marks]
    for cluster in clusters:
        numbers = sorted(n for _, n in cluster)
        text = f"step {numbers[0]}" if len(numbers) == 1 else f"steps {numbers[0]}–{numbers[-1]}"
        parts.append(label(cluster[0][0], y + 52, text, "#1f4e79"))
    return parts


def blast_svg(blast: BlastSection) -> str:
    """The chain records → … → deployments as boxes with counts."""
    box, gap, top = 112, 24, 10
    parts = []
    for i, stage in enumerate(blast.stages):
        left = 10 + i * (box + gap)
        fill = "#e3eefa" if stage.count else "#f0f0f0"
        parts.append(f'<rect x="{left}" y="{top}" width="{box}" height="58" rx="6" fill="{fill}" stroke="#1f4e79"/>')
        parts.append(_text(left + box / 2, top + 27, f"{stage.count:,}", "middle", "#1f4e79", 'font-size="18"'))
        parts.append(_text(left + box / 2, top + 47, stage.name, "middle"))
        if i:
            parts.append(f'<path d="M{left - gap + 3} {top + 29} H{left - 5} l-5 -4 v8 l5 -4" stroke="#555" '
                         'fill="#555"/>')
    width = 20 + len(blast.stages) * (box + gap) - gap
    return _svg(width, 80, "".join(parts), "blast radius chain")


def distribution_svg(score: str, rows: Sequence[tuple[str, Distribution | None]]) -> str:
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

    parts = []
    for i, (label, dist) in enumerate(rows):
        yc = 22 + i * row_h
        parts.append(_text(8, yc + 4, label, fill="#1b1b1b", extra='font-weight="600"'))
        if dist is None:
            parts.append(_text(left, yc + 4, "not reached", fill="#777"))
            continue
        parts.extend(_box(dist, x, yc))
        for j, point in enumerate(dist.points):
            colour = "#b3261e" if point.flagged else "#1f4e79"
            parts.append(f'<circle cx="{x(point.value):.1f}" cy="{yc + (j % 5 - 2) * 3}" r="3.5" fill="{colour}" '
                         f'fill-opacity="0.8"><title>{_e(point.record_id)}</title></circle>')
    axis = 22 + len(rows) * row_h - 14
    parts.append(f'<line x1="{left}" x2="{right}" y1="{axis}" y2="{axis}" stroke="#888"/>')
    for value, anchor in ((lo, "start"), ((lo + hi) / 2, "middle"), (hi, "end")):
        parts.append(_text(x(value), axis + 13, f"{value:.3g}", anchor, "#555"))
    parts.append(_text(right, axis + 26, f"{SCORE_LABELS.get(score, score)}: more memorized →", "end", "#555"))
    return _svg(right + 20, axis + 32, "".join(parts), f"{score} against the holdout")


def _box(dist: Distribution, x, yc: int) -> list[str]:
    """The holdout's whiskers, quartile box and median."""
    q = {k: float(dist.holdout[k]) for k in ("q05", "q25", "median", "q75", "q95")}
    return [f'<line x1="{x(q["q05"]):.1f}" x2="{x(q["q95"]):.1f}" y1="{yc}" y2="{yc}" stroke="#999"/>',
            f'<rect x="{x(q["q25"]):.1f}" y="{yc - 9}" width="{max(x(q["q75"]) - x(q["q25"]), 1):.1f}" height="18" '
            'fill="#e6e6e6" stroke="#999"/>',
            f'<line x1="{x(q["median"]):.1f}" x2="{x(q["median"]):.1f}" y1="{yc - 9}" y2="{yc + 9}" '
            'stroke="#555" stroke-width="2"/>']


# ---- sections ----

def _request_html(report: ErasureReport) -> str:
    """The request as filed."""
    r = report.request
    extension = (f"to {_when(r.extended_due_at)}: {r.extension_reason}" if r.extended_due_at else "none")
    keys = _Raw(", ".join(f"{_e(k)}: <code>{_e(v)}</code>" for k, v in r.subject_keys.items()) or "none")
    return "<h2>Request</h2>" + _pairs([
        ("request", r.id), ("regime", r.regime.upper()), ("status", r.status), ("requester", r.requester),
        ("received", _when(r.received_at)), ("filed", _when(r.filed_at)), ("due", _when(r.due_at)),
        ("extension", extension), ("deadline in force", _when(r.deadline)), ("subject keys (truncated)", keys),
        ("held for review", "yes" if r.review else "no")])


def _timeline_html(timeline: Timeline) -> str:
    """The timeline chart and the steps' times."""
    rows = [(i + 1, m.step, _when(m.started_at), _when(m.finished_at), _num(m.seconds))
            if m.reached else (i + 1, m.step, _Raw(_missing()), "", "") for i, m in enumerate(timeline.steps)]
    return ("<h2>Timeline</h2>" + timeline_svg(timeline)
            + _table(["#", "step", "started", "finished", "seconds"], rows, numeric=(0, 4)))


def _scope_html(scope: ScopeSection | None) -> str:
    """The scope table with counts per reason and decision."""
    if scope is None:
        return "<h2>Scope</h2>" + _missing()
    counts = _table(["reason", "records"], [(k, v) for k, v in scope.per_reason.items()], numeric=(1,)) + \
        _table(["decision", "records"], [(k, v) for k, v in scope.per_decision.items()], numeric=(1,))
    rows = [(_Raw(f"<code>{_e(r.id)}</code>"), ", ".join(r.reasons), _num(r.similarity),
             " ".join(filter(None, [r.matched, r.confirmation and f"({r.confirmation})"])) or "—", r.decision,
             _Raw(f'<code title="{_e(r.content_sha256)}">{_e(r.content_sha256[:16])}…</code>'))
            for r in scope.records]
    summary = _pairs([("records in scope", scope.in_scope), ("records listed", len(scope.records)),
                      ("subject keys found in the graph", scope.subject_keys_found),
                      ("records scanned", _num(scope.scanned)), ("near-duplicate candidates", _num(scope.candidates))])
    notes = "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in scope.notes) + "</ul>" if scope.notes else ""
    return ("<h2>Scope</h2>" + summary + counts + notes
            + _table(["record", "reasons", "similarity", "near-duplicate of (confirmed by)", "decision",
                      "content sha256"], rows, numeric=(2,)))


def _blast_html(blast: BlastSection | None) -> str:
    """The blast-radius chain and its ids."""
    if blast is None:
        return "<h2>Blast radius</h2>" + _missing()
    ids = [(s.name, s.count, _Raw('<span class="ids">' + _e(", ".join(s.ids[:SHOWN_IDS]))
                                  + (f" … and {len(s.ids) - SHOWN_IDS} more" if len(s.ids) > SHOWN_IDS else "")
                                  + "</span>")) for s in blast.stages]
    notes = [("started from", blast.start), ("records erased earlier", blast.records_erased),
             ("records held out (never trained on)", blast.records_held_out),
             ("depth limit", f"{blast.depth_limit}" + (" — reached: adapters merged further are not shown"
                                                       if blast.depth_limit_hit else ""))]
    served = _table(["served adapter", "uri"], [(a.id, a.uri) for a in blast.served_adapters]) \
        if blast.served_adapters else ""
    return ("<h2>Blast radius</h2>" + blast_svg(blast) + _pairs(notes)
            + _table(["stage", "count", "ids"], ids, numeric=(1,)) + served)


def _auc(summary: ProbeSummary | None, score: str) -> str:
    """'0.930 [0.850, 0.990] (n=20/69, people 5/14)' or '—'."""
    auc = summary.auc.get(score) if summary else None
    if auc is None:
        return "—"
    people = "" if auc.forget_people is None else f", people {auc.forget_people}/{auc.holdout_people}"
    return f"{auc.value:.3f} [{auc.ci_low:.3f}, {auc.ci_high:.3f}] (n={auc.forget}/{auc.holdout}{people})"


def _probe_pair_html(before: ProbeSummary | None, after: ProbeSummary | None, after_reached: bool) -> str:
    """Flagged counts, AUCs and distributions of an adapter before and its replacement after."""
    absent = "not reached" if not after_reached else "not probed"
    title = f"{before.adapter if before else '—'} → {after.adapter if after else absent}"

    def figures(s: ProbeSummary | None) -> list[object]:
        if s is None:
            return ["—"] * 4
        return [f"{len(s.flagged)} of {s.records}", f"{_num(s.alpha)} ({s.per_score_threshold:.4g} per score)",
                s.holdout_ids, _num(s.holdout_false_flag_rate)]

    labels = ["flagged records", "alpha (threshold)", "holdout records", "holdout false-flag rate"]
    rows = [(label, b, a) for label, b, a in zip(labels, figures(before), figures(after))]
    scores = list(dict.fromkeys([*(before.auc if before else {}), *(after.auc if after else {})]))
    rows += [(f"AUC {SCORE_LABELS.get(s, s)} [95% CI]", _auc(before, s), _auc(after, s)) for s in scores]
    out = f"<h3>{_e(title)}</h3>" + _table(["", "before", "after"], rows)
    drawn = list(dict.fromkeys([*(before.distributions if before else {}), *(after.distributions if after else {})]))
    for score in drawn:
        out += distribution_svg(score, [("before", before.distributions.get(score) if before else None),
                                        ("after", after.distributions.get(score) if after else None)])
    undrawn = {**(before.undrawn if before else {}), **(after.undrawn if after else {})}
    if undrawn:
        out += "<p>Not drawn: " + "; ".join(f"{_e(k)} ({_e(v)})" for k, v in undrawn.items()) + "</p>"
    notes = [f"{when}: {n}" for when, s in (("before", before), ("after", after)) if s for n in s.notes]
    return out + ("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>" if notes else "")


def _probes_html(report: ErasureReport) -> str:
    """Probe results before and after, per adapter."""
    probes = report.probes
    head = ("<h2>Probes</h2><p>Scores are oriented so that larger means more memorized; the grey box is the "
            "holdout (whiskers q05–q95, box q25–q75, line at the median), dots are the scope records "
            "(red: flagged as memorized).</p>")
    if probes.before is None and probes.after is None:
        return head + _missing("probes: not reached")
    body = "".join(_probe_pair_html((probes.before or {}).get(p.before) if p.before else None,
                                    (probes.after or {}).get(p.after) if p.after else None, probes.after is not None)
                   for p in probes.pairs)
    return head + (body or "<p>No adapter was probed.</p>")


def _remedy_html(report: ErasureReport) -> str:
    """What each remedy did."""
    if report.remedy is None:
        return "<h2>Remedy</h2>" + _missing()
    out = "<h2>Remedy</h2>" + "".join(_one_remedy(r) for r in report.remedy.remedies)
    if report.remedy.noop:
        out += "<h3>Left alone</h3>" + _table(["adapter", "why"], [(n.adapter, n.reason) for n in report.remedy.noop])
    if report.remedy.failed:
        out += "<h3>Failed</h3><ul>" + "".join(f"<li><code>{_e(json.dumps(f, sort_keys=True))}</code></li>"
                                                for f in report.remedy.failed) + "</ul>"
    return out if report.remedy.remedies or report.remedy.noop else out + "<p>No remedy was needed.</p>"


def _erased_html(report: ErasureReport) -> str:
    """What was deleted at the source: tombstones, texts, cached embeddings, batch-file lines."""
    done = report.erased_at_source
    if done is None:
        return "<h2>Erased at the source</h2>" + _missing()
    lines = ", ".join(f"{name}: {n}" for name, n in done.batch_lines_removed.items()) or "none"
    return "<h2>Erased at the source</h2>" + _pairs([
        ("scope records", done.records), ("tombstoned now", _num(done.tombstoned_now)),
        ("texts deleted", _num(done.texts_deleted)), ("cached indexes dropped", _num(done.index_caches_dropped)),
        ("batch-file lines removed", lines)])


def _one_remedy(r: Remedy) -> str:
    """One remedy: summary, attempts, utility, deleted weights."""
    escalation = f"yes: {r.escalation_reason or 'no reason recorded'}" if r.escalated else "no"
    method = r.method + (f" (requested: {r.requested_method})" if r.requested_method not in (None, r.method) else "")
    out = f"<h3>{_e(r.remedy_id)}</h3>" + _pairs([
        ("adapter", f"{r.old_adapter} → {r.new_adapter or '—'}"),
        ("sha256 old → new", _Raw(f"<code>{_e(r.old_adapter_sha256 or '—')}</code> → "
                                  f"<code>{_e(r.new_adapter_sha256 or '—')}</code>")),
        ("method", method), ("kind", r.kind), ("escalated", escalation),
        ("still flagged after", ", ".join(r.still_flagged) or "none"), ("seconds", _num(r.seconds)),
        ("new dataset version", r.new_dataset_version or "—"),
        ("requests sharing this remedy", ", ".join(r.coalesced_with) or "—")])
    out += _table(["attempt", "method", "kind", "sha256", "steps", "seconds", "flagged after"],
                  [(i + 1, a.method, a.kind, _Raw(f"<code>{_e((a.sha256 or '—')[:16])}</code>"), _num(a.steps),
                    _num(a.seconds), f"{len(a.flagged_after)}" + (f": {', '.join(a.flagged_after)}"
                                                                 if a.flagged_after else ""))
                   for i, a in enumerate(r.attempts)], numeric=(0, 4, 5))
    out += _table(["utility on", "records", "NLL before", "NLL after", "change"],
                  [(k, u.records, _num(u.nll_before, 4), _num(u.nll_after, 4), f"{u.relative_change * 100:+.2f} %")
                   for k, u in r.utility.items()], numeric=(1, 2, 3, 4)) if r.utility else "<p>No utility figures.</p>"
    out += _table(["deleted weights of", "sha256 of the deleted files", "deleted at"],
                  [(d.adapter, _Raw(f"<code>{_e(d.sha256)}</code>"), _when(d.deleted_at)) for d in r.deleted_weights]) \
        if r.deleted_weights else "<p>No weights deleted.</p>"
    return out


def _verdict_html(report: ErasureReport) -> str:
    """The attested verdict and its reasons."""
    if report.verdict is None:
        return "<h2>Verdict</h2>" + _missing("not reached: the request is not attested yet")
    v = report.verdict
    reasons = "<ul>" + "".join(f"<li>{_e(x)}</li>" for x in v.reasons) + "</ul>" if v.reasons else ""
    return f'<h2>Verdict</h2><p><span class="badge {_e(v.status)}">{_e(v.status)}</span></p>{reasons}'


def _verify_html(verify: VerifySection | None) -> str:
    """The offline verification command."""
    if verify is None:
        return "<h2>How to verify</h2>" + _missing("not reached: there is no attestation to verify yet")
    warn = "" if verify.bundle_present else '<p class="late">The bundle file is missing from the run folder.</p>'
    return ("<h2>How to verify</h2><p>Offline, with the key registry:</p>"
            f"<pre><code>{_e(verify.command)}</code></pre>" + warn
            + _pairs([("envelope sha256", _Raw(f"<code>{_e(verify.envelope_sha256)}</code>")),
                      ("log index", verify.log_index), ("bundle", verify.bundle), ("key registry", verify.registry)]))


def _page(title: str, body: str) -> str:
    """A whole page."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def render_report(report: ErasureReport) -> str:
    """The report page."""
    intro = (f"<h1>Erasure report {_e(report.request.id)}</h1><p>Generated {_e(_when(report.generated_at))}. "
             "Only ids, hashes, times and figures from the request's run folder; steps not reached are marked so.</p>")
    body = "".join([intro, _request_html(report), _timeline_html(report.timeline), _scope_html(report.scope),
                    _blast_html(report.blast_radius), _probes_html(report), _remedy_html(report),
                    evidence_html(report.evidence), _erased_html(report), _verdict_html(report),
                    _verify_html(report.verify)])
    return _page(f"Erasure report {report.request.id}", body)


def render_register(rows: Sequence[RegisterRow], generated_at: datetime) -> str:
    """The register page: every request by deadline, overdue ones highlighted."""
    body = []
    for r in rows:
        link = _Raw(f'<a href="{_e(quote(r.id))}/report.html">report</a>') if r.report else "—"
        days = _Raw(f'<span class="late">{_e(_days(r.days_left))}</span>') if r.overdue else _days(r.days_left)
        cells = [_Raw(f"<code>{_e(r.id)}</code>"), r.regime.upper(), r.status, _when(r.received_at),
                 _when(r.deadline), days, r.verdict or "—", "yes" if r.attested else "no", link]
        row_class = ' class="overdue"' if r.overdue else ""
        body.append(f"<tr{row_class}>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("request", "regime", "status", "received", "deadline", "days left",
                                              "verdict", "attested", "report"))
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>" if rows \
        else "<p>No requests filed.</p>"
    intro = (f"<h1>Erasure request register</h1><p>Generated {_e(_when(generated_at))}; {len(rows)} request(s), "
             f"{sum(r.overdue for r in rows)} overdue. Days left are counted at the attestation for attested "
             "requests, else now.</p>")
    return _page("Erasure request register", intro + table)
