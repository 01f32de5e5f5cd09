"""A flag left after an exact remedy is looked into before it turns a verdict (real Neo4j, content store, MiniLM
and FAISS). The probe reports are written here: the point is the run's statistics and the search for causes,
not the probes (tests/unlearning covers those)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from erasure.checks import statistics_step
from erasure.identity import Decision, IdentityResult, ResolvedIdentifier
from erasure.requests import FiledRequest, Regime, request_dir
from erasure.run_folder import save_step, step_results
from erasure.sweep import SweepResult
from lethe.settings import Settings
from lineage.content_store import ContentStore
from lineage.dataset import plan_dataset_version, write_dataset_version
from lineage.ingest import ingest_batch
from lineage.record_batch import parse_jsonl
from lineage.store.writers import LineageWriter
from lethe.wiring import erasure_context
from tests.lineage.lineage_fixtures import jsonl
from unlearning.probes.report import ProbeConfig, ProbeReport, PValueReport, RecordProbe

PEPPER = "ab" * 32
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
COPIED = ("The espresso machine from order ORD-771204 leaks under the boiler and trips the breaker every "
          "morning; the technician who came on Tuesday left part KX-33-190 behind.")


def _records() -> list[dict]:
    filler = [{"id": f"n{i}", "subject": {"email": f"n{i}@example.org"}, "source": "helpdesk",
               "text": f"My parcel {1000 + i} is late again, please check the courier for order {2000 + i}."}
              for i in range(30)]
    return [{"id": "s1", "subject": {"email": "sam@example.com"}, "source": "helpdesk", "text": COPIED},
            {"id": "s2", "subject": {"email": "sam@example.com"}, "source": "helpdesk",
             "text": "Please close my account; I am moving abroad next month."},
            {"id": "t1", "subject": {"email": "tia@example.com"}, "source": "helpdesk",
             "text": "Tia here: the blender I bought makes a grinding noise, can I return it?"},
            {"id": "o1", "subject": {"email": "olu@example.net"}, "source": "helpdesk",
             "text": "Forwarded: " + COPIED}, *filler]


def _report(adapter: str, p: dict[str, float]) -> dict:
    """A probe report with the given ratio p-values (its holdout figures are placeholders)."""
    records = [RecordProbe(record_id=rid, scores={"ratio": 0.5}, flagged=v < 0.0025, flagged_by=[],
                           p_values={"ratio": PValueReport(value=v, estimate="normal-fit", holdout=100),
                                     "es": PValueReport(value=1.0, estimate="empirical", holdout=100)})
               for rid, v in p.items()]
    return ProbeReport(adapter=adapter, adapter_sha256="0" * 64, base_model_sha256="0" * 64, device="cpu",
                       dtype="float32", config=ProbeConfig(alpha=0.01), per_score_threshold=0.0025,
                       scores=["ratio", "es"], holdout_ids=100, holdout_stats={}, holdout_false_flag_rate=0.0,
                       records=records, flagged=[r.record_id for r in records if r.flagged], auc={},
                       generation=None, notes=[], seconds=0.0).model_dump(mode="json")


def _request(settings: Settings, graph, keyer, rid: str, email: str, owned: list[str], p: dict[str, float],
             plan) -> FiledRequest:
    key = keyer.key("email", email)
    request = FiledRequest(id=rid, subject_keys={"email": key}, regime=Regime.GDPR, received_at=NOW, due_at=NOW,
                           requester="legal", idempotency_hmac="0" * 64, filed_at=NOW)
    request_dir(settings.state_dir, rid).mkdir(parents=True)
    identity = IdentityResult(expand=True, hops=1, max_identifiers=16, records=owned, identifiers=[
        ResolvedIdentifier(kind="email", key=key, hop=0, decision=Decision.GIVEN, owned_records=len(owned),
                           people=1, value_source="given")])
    scope = {"records": [{"id": r, "content_sha256": "0" * 64, "reasons": ["owned"], "decision": "included"}
                         for r in owned], "subject_keys_found": 1}
    remedy = {"remedies": [{"remedy_id": "rm-1", "new_adapter": "adapter-new", "new_adapter_sha256": "1" * 64,
                            "old_adapter": "adapter-old", "method": "retrain", "kind": "exact", "escalated": False,
                            "new_dataset_version": plan.version.id, "seconds": 1.0,
                            "old_manifest": {"dataset_version": plan.version.id, "root": "0" * 64, "size": 1}}],
              "noop": []}
    sweep_after = SweepResult(phase="after", texts_scanned=0, batch_lines_scanned=0, training_texts_scanned=0,
                              identifier_kinds=["email"], values_missing=[], secrets=0, hits=[], weak_hits=0)
    for name, result in (("identity", identity.model_dump(mode="json")), ("scope", scope), ("remedy", remedy),
                         ("probe_before", {"adapters": {"adapter-old": _report("adapter-old", p)}}),
                         ("probe_after", {"adapters": {"adapter-new": _report("adapter-new", p)}}),
                         ("sweep_after", sweep_after.model_dump(mode="json"))):
        save_step(settings.state_dir, rid, name, NOW, result)
    return request


@pytest.fixture
def run(graph, tmp_path):
    settings = Settings(state_dir=tmp_path / "state", pepper=PEPPER)
    from lethe import wiring

    keyer = wiring.subject_keyer(settings)
    content = ContentStore(settings.content_store_path)
    writer = LineageWriter(graph)
    report = ingest_batch(parse_jsonl(jsonl(_records()), keyer), writer, content)
    content.close()
    # What the new adapters train on after the remedy: everything but the two subjects' records.
    kept = [(rid, sha) for rid, sha in report.kept if rid not in ("s1", "s2", "t1")]
    plan = plan_dataset_version("after", kept, NOW, shard_count=2, holdout_fraction=0.0, seed=0)
    write_dataset_version(writer, plan)
    sam = _request(settings, graph, keyer, "er-" + "a" * 24, "sam@example.com", ["s1", "s2"],
                   {"s1": 1e-7, "s2": 0.4}, plan)
    tia = _request(settings, graph, keyer, "er-" + "b" * 24, "tia@example.com", ["t1"], {"t1": 1e-7}, plan)
    return settings, sam, tia


def test_a_flag_with_a_copy_in_the_new_training_set_has_a_cause_and_one_without_is_chance(run, graph):
    settings, sam, tia = run
    statistics_step(erasure_context(settings, graph), [sam, tia], alpha=0.01)
    stats = {r.id: step_results(settings.state_dir, r.id).result_document("statistics") for r in (sam, tia)}
    assert stats[sam.id]["tests_after"] == 3 and stats[sam.id]["run_requests"] == sorted([sam.id, tia.id])
    flags = {r["record_id"]: r for s in stats.values() for r in s["records"] if r["phase"] == "after" and r["flagged"]}
    assert sorted(flags) == ["s1", "t1"]
    assert flags["s1"]["p_adjusted"] == pytest.approx(2e-7 * 3)  # two scores, three tests
    assert "record o1" in flags["s1"]["cause"] and "near-duplicate" in flags["s1"]["cause"]
    assert flags["t1"]["cause"] is None  # no copy, no identifier left: chance, reported with its p-value
