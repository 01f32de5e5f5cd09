"""The report's evidence that its verdict is true both ways: the identity, the sweeps, the run's statistics
and whether the subject's records were ever trained on — built from the typed step results, and their HTML.

Keys are shown truncated and marked `hmac:`; identifiers only by kind; records by id and hash.
"""

from __future__ import annotations

from erasure.html_parts import _e, _missing, _num, _pairs, _Raw, _table
from erasure.identity import IdentityResult
from erasure.report_model import EvidenceSection, IdentityRow, IdentitySection, StatisticsSection, \
    TrainingSection, hmac_label
from erasure.statistics import StatisticsResult
from erasure.sweep import SweepResult

__all__ = ["evidence_html", "evidence_section"]


def _identity(result: IdentityResult) -> IdentitySection:
    rows = [IdentityRow(kind=i.kind, key=hmac_label(i.key), hop=i.hop, decision=i.decision.value,
                        owned_records=i.owned_records, people=i.people, value_found=i.value_source is not None,
                        linked_by=i.linked_by[:5]) for i in result.identifiers]
    return IdentitySection(expand=result.expand, hops=result.hops, identifiers=rows,
                           ambiguous_records=result.ambiguous_records, notes=result.notes)


def _statistics(result: StatisticsResult) -> StatisticsSection:
    return StatisticsSection(method=result.method, alpha=result.alpha, run_requests=len(result.run_requests),
                             tests_before=result.tests_before, tests_after=result.tests_after,
                             flags_before=result.flags_before, flags_after=result.flags_after,
                             own_flags=[r for r in result.records if r.flagged])


def evidence_section(results: dict, training: dict | None) -> EvidenceSection:
    """The evidence section from the typed step results a report read."""
    return EvidenceSection(
        identity=_identity(results["identity"]) if "identity" in results else None,
        training=TrainingSection.model_validate(training) if training else None,
        sweep_before=results.get("sweep_before"), sweep_after=results.get("sweep_after"),
        statistics=_statistics(results["statistics"]) if "statistics" in results else None)


def _identity_html(section: IdentitySection | None) -> str:
    if section is None:
        return "<h2>Identity</h2>" + _missing()
    rows = [(r.kind, _Raw(f"<code>{_e(r.key)}</code>"), r.hop, r.decision, r.owned_records, _num(r.people),
             "yes" if r.value_found else "no", ", ".join(r.linked_by) or "—") for r in section.identifiers]
    notes = "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in section.notes) + "</ul>" if section.notes else ""
    intro = (f"<p>From the identifiers filed, Lethe followed the other identifiers its records link to the same "
             f"person ({'one hop' if section.hops == 1 else f'{section.hops} hops'}"
             f"{'' if section.expand else '; expansion was turned off'}). Values are never stored: only kinds "
             "and keyed HMACs. An identifier whose records belong to several people is reported, not followed.</p>")
    return ("<h2>Identity</h2>" + intro + notes
            + _table(["kind", "key", "hop", "decision", "records owned", "people", "value read back", "linked by"],
                     rows, numeric=(2, 4, 5)))


def _training_html(section: TrainingSection | None) -> str:
    if section is None:
        return ""
    if section.never_trained:
        adapters = ", ".join(section.adapters_trained_on_mentions) or "none"
        lead = (f"<p><strong>Never trained:</strong> none of the subject's {section.subject_records} own records "
                f"reached a fine-tune run ({section.held_out} held out, {section.not_in_any_run} in no run). "
                f"Adapters that trained on records that mention them: {_e(adapters)}.</p>")
    else:
        lead = f"<p>{section.trained} of the subject's {section.subject_records} own records were trained on.</p>"
    return "<h2>Training</h2>" + lead


def _sweep_html(name: str, sweep: SweepResult | None) -> str:
    if sweep is None:
        return f"<h3>{_e(name)}</h3>" + _missing()
    pairs = _pairs([("texts scanned (content store)", sweep.texts_scanned),
                    ("batch-file lines scanned", sweep.batch_lines_scanned),
                    ("of which the new adapter trained on", _num(sweep.training_texts_scanned)),
                    ("identifier kinds looked for", ", ".join(sweep.identifier_kinds) or "—"),
                    ("secrets looked for", sweep.secrets), ("weak hits (not acted on)", sweep.weak_hits)])
    rows = [(_Raw(f"<code>{_e(h.record_id)}</code>"), ", ".join(h.kinds), ", ".join(h.places), h.disposition)
            for h in sweep.hits]
    hits = _table(["record", "holds", "where", "disposition"], rows) if rows else "<p>No record holds them.</p>"
    notes = "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in sweep.notes) + "</ul>" if sweep.notes else ""
    return f"<h3>{_e(name)}</h3>" + pairs + notes + hits


def _statistics_html(section: StatisticsSection | None) -> str:
    if section is None:
        return "<h2>False-alarm control</h2>" + _missing()
    intro = (f"<p>Holm's step-down over every (adapter, record) test of the run's {section.run_requests} "
             f"request(s) keeps the chance of any false flag in the whole run at α = {section.alpha:g}. "
             f"After the remedy {section.flags_after} of {section.tests_after} tests flag in the run "
             f"(before: {section.flags_before} of {section.tests_before}). A flag after an exact remedy is "
             "looked into (near-duplicates or the subject's identifiers left in the training set); without a "
             "cause it is reported here and does not turn the verdict.</p>")
    rows = [(r.phase, r.adapter, _Raw(f"<code>{_e(r.record_id)}</code>"), _num(r.p_value), _num(r.p_adjusted),
             r.cause or ("chance (no cause found)" if r.phase == "after" else "—")) for r in section.own_flags]
    table = _table(["phase", "adapter", "record", "p", "Holm p", "cause"], rows, numeric=(3, 4)) if rows \
        else "<p>None of this request's records flags.</p>"
    return "<h2>False-alarm control</h2>" + intro + table


def evidence_html(section: EvidenceSection) -> str:
    """Identity, training status, the sweeps and the statistics, as HTML."""
    sweeps = ("<h2>Residual sweeps</h2><p>Every text Lethe keeps, searched for the person's identifiers (any "
              "format, names in their usual variants) and their secrets. Before the remedy a hit joins the scope; "
              "after it, a hit is residue and the verdict says so.</p>"
              + _sweep_html("Before the remedy", section.sweep_before)
              + _sweep_html("After the remedy", section.sweep_after))
    return (_identity_html(section.identity) + _training_html(section.training) + sweeps
            + _statistics_html(section.statistics))
