"""The report's evidence that its verdict is true both ways: the identity, the sweeps, the run's statistics
and whether the subject's records were ever trained on — built from the typed step results.

Keys are shown truncated and marked `hmac:`; identifiers only by kind; records by id and hash.
"""

from __future__ import annotations

from erasure.identity import IdentityResult
from erasure.report_model import (EvidenceSection, IdentityRow, IdentitySection, StatisticsSection,
                                  TrainingSection, hmac_label)
from erasure.statistics import StatisticsResult

__all__ = ["evidence_section"]


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
