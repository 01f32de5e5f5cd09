"""The auditor's report and the request register, built from synthetic run folders (no Neo4j)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from erasure.identity import Decision, IdentityResult, ResolvedIdentifier
from erasure.reporting import (ErasureReport, RegisterRow, ReportError, build_report, oriented_score, register,
                               write_register)
from erasure.requests import FiledRequest, Regime, RequestNotFoundError, RequestState, due_dates, request_dir
from erasure.statistics import FamilyRecord, StatisticsResult
from erasure.sweep import SweepResult
from lineage.impact import AdapterRef, BlastRadius, DatasetRef, DeploymentRef
from lineage.keys import IdentifierKind, SubjectKeyer
from unlearning.probes.calibration import (SCORES, auc_with_ci, calibrated_p_value, holdout_summary, oriented,
                                           threshold)
from unlearning.probes.report import AucReport, ProbeConfig, ProbeReport, PValueReport, RecordProbe

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
SCOPE = [("rec-0001", ["owned"], None, "included"), ("rec-0002", ["owned", "mentioned"], None, "included"),
         ("rec-0003", ["mentioned"], None, "included"), ("rec-0104", ["near_duplicate"], 0.93, "included"),
         ("rec-0377", ["near_duplicate"], 0.81, "excluded_borderline")]
IN_SCOPE = [r[0] for r in SCOPE if r[3] == "included"]
OLD, NEW = "adapter-aaaa000011112222", "adapter-bbbb333344445555"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _request(keyer: SubjectKeyer, n: int, received: datetime, status: RequestState) -> FiledRequest:
    """A filed request with real subject keys (the raw identifier stays here, in the test)."""
    due, _ = due_dates(Regime.GDPR, received)
    return FiledRequest(id=f"er-{n:024x}", subject_keys={"email": keyer.key(IdentifierKind.EMAIL, f"p{n}@example.org")},
                        regime=Regime.GDPR, received_at=received, due_at=due, requester="privacy-ops",
                        idempotency_hmac=_sha(f"idem-{n}"), filed_at=received + timedelta(hours=1), status=status)


def _raw_scores(rng: np.random.Generator, memorized: bool) -> dict[str, float]:
    """Raw probe scores of one record: memorized ones have a low NLL ratio and high Min-K%++, es, em."""
    ref = float(rng.uniform(3.0, 4.0))
    ratio = float(rng.uniform(0.2, 0.35)) if memorized else float(rng.normal(0.95, 0.04))
    es = float(rng.uniform(0.6, 0.9)) if memorized else float(rng.uniform(0.0, 0.1))
    return {"nll": ref * ratio, "ref_nll": ref, "ratio": ratio,
            "min_k_pp": float(rng.normal(1.5 if memorized else -0.5, 0.2)), "es": es, "em": es}


def _probe(adapter: str, memorized: bool, seed: int) -> ProbeReport:
    """A real ProbeReport: holdout statistics, p-values, flags and AUC computed by the calibration code."""
    rng = np.random.default_rng(seed)
    holdout_raw = [_raw_scores(rng, False) for _ in range(120)]
    holdout = {s.name: oriented(s, np.array([h[s.name] for h in holdout_raw])) for s in SCORES}
    cut = threshold(0.01)
    records, forget = [], {s.name: [] for s in SCORES}
    for record_id in IN_SCOPE:
        raw = _raw_scores(rng, memorized)
        p = {s.name: calibrated_p_value(float(oriented(s, np.array([raw[s.name]]))[0]), holdout[s.name], s.fit_tail)
             for s in SCORES}
        flagged_by = [name for name, pv in p.items() if pv.value < cut]
        records.append(RecordProbe(record_id=record_id, scores=raw, flagged=bool(flagged_by), flagged_by=flagged_by,
                                   p_values={k: PValueReport(value=v.value, estimate=v.estimate, holdout=v.holdout)
                                             for k, v in p.items()}))
        for s in SCORES:
            forget[s.name].append(float(oriented(s, np.array([raw[s.name]]))[0]))
    auc = {s.name: AucReport(**vars(auc_with_ci(np.array(forget[s.name]), holdout[s.name], resamples=200)))
           for s in SCORES}
    return ProbeReport(adapter=adapter, adapter_sha256=_sha(adapter), base_model_sha256=_sha("base"), device="cpu",
                       dtype="float32", config=ProbeConfig(), per_score_threshold=cut, scores=[s.name for s in SCORES],
                       holdout_ids=120, holdout_stats={k: holdout_summary(v) for k, v in holdout.items()},
                       holdout_false_flag_rate=0.008, records=records,
                       flagged=[r.record_id for r in records if r.flagged], auc=auc, generation=None,
                       notes=["calibrated against the 120 holdout records of ds-support-v3"], seconds=4.2)


def _blast_radius() -> dict:
    radius = BlastRadius(
        start="subject", subject_keys_found=1, records=4, records_held_out=0, depth_limit=6,
        datasets=[DatasetRef(id="ds-support-v3", name="support")], shards=["shard-a1", "shard-b2"],
        runs=["run-0f0f", "run-1e1e"], adapters=[AdapterRef(id="adapter-s1", state="active"),
                                                 AdapterRef(id="adapter-s2", state="active"),
                                                 AdapterRef(id=OLD, state="active")],
        deployments=[DeploymentRef(id="deploy-chat", endpoint="http://127.0.0.1:8000/chat")],
        record_shard=[(r, "shard-a1" if i % 2 else "shard-b2") for i, r in enumerate(IN_SCOPE)],
        shard_dataset=[("shard-a1", "ds-support-v3"), ("shard-b2", "ds-support-v3")],
        run_shard=[("run-0f0f", "shard-a1"), ("run-1e1e", "shard-b2")],
        run_adapter=[("run-0f0f", "adapter-s1"), ("run-1e1e", "adapter-s2")],
        adapter_merged=[("adapter-s1", OLD), ("adapter-s2", OLD)], adapter_deployment=[(OLD, "deploy-chat")])
    training = {"subject_records": 2, "trained": 2, "held_out": 0, "not_in_any_run": 0, "never_trained": False,
                "adapters_trained_on_mentions": []}
    return {**radius.model_dump(mode="json"), "served_adapters": [{"id": OLD, "uri": "file:///models/" + OLD}],
            "training": training}


def _remedy(escalated: bool) -> dict:
    attempts = [{"method": "grad_diff", "kind": "approximate", "sha256": _sha("ga"), "steps": 40, "seconds": 12.5,
                 "flagged_after": ["rec-0002"] if escalated else [], "details": {"lr": 2e-4}}]
    if escalated:
        attempts.append({"method": "retrain", "kind": "exact", "sha256": _sha(NEW), "steps": 300, "seconds": 95.0,
                         "flagged_after": [], "details": {"shards_retrained": ["shard-a1", "shard-b2"]}})
    return {"remedies": [{
        "remedy_id": "remedy-7a7a", "old_adapter": OLD, "new_adapter": NEW, "new_adapter_sha256": _sha(NEW),
        "method": "retrain" if escalated else "grad_diff", "kind": "exact" if escalated else "approximate",
        "escalated": escalated, "escalation_reason": "rec-0002 still flagged after grad_diff" if escalated else None,
        "attempts": attempts,
        "utility": {"retain": {"records": 256, "nll_before": 2.10, "nll_after": 2.13, "relative_change": 0.0143},
                    "holdout": {"records": 120, "nll_before": 3.40, "nll_after": 3.41, "relative_change": 0.0029}},
        "deleted_weights": [{"adapter": OLD, "sha256": _sha("old weights"), "deleted_at": "2026-02-03T10:20:00+00:00"}],
        "new_dataset_version": "ds-support-v4", "coalesced_with": [], "seconds": 110.0}], "noop": []}


def _identity(request: FiledRequest) -> dict:
    email = request.subject_keys["email"]
    return IdentityResult(expand=True, hops=1, max_identifiers=16, records=["rec-0001", "rec-0002"], identifiers=[
        ResolvedIdentifier(kind="email", key=email, hop=0, decision=Decision.GIVEN, owned_records=2, people=1,
                           value_source="given"),
        ResolvedIdentifier(kind="name", key=_sha("name"), hop=1, decision=Decision.FOLLOWED,
                           linked_by=["rec-0001", "rec-0002"], owned_records=2, people=1, value_source="text"),
        ResolvedIdentifier(kind="account", key=_sha("account"), hop=1, decision=Decision.SHARED,
                           linked_by=["rec-0001"], owned_records=5, people=2)]).model_dump(mode="json")


def _sweep(phase: str, training: int | None) -> dict:
    return SweepResult(phase=phase, texts_scanned=120, batch_lines_scanned=120, training_texts_scanned=training,
                       identifier_kinds=["email", "name"], values_missing=[], secrets=2, hits=[], weak_hits=1
                       ).model_dump(mode="json")


def _statistics(flag: bool) -> dict:
    records = [FamilyRecord(phase="after", adapter=NEW, record_id=r, p_value=0.0001 if flag and r == "rec-0002"
                            else 0.5, p_adjusted=0.0004 if flag and r == "rec-0002" else 1.0,
                            flagged=flag and r == "rec-0002",
                            cause="still looks memorized after an approximate method" if flag and r == "rec-0002"
                            else None) for r in IN_SCOPE]
    return StatisticsResult(method="holm", alpha=0.01, run_requests=["er-1", "er-2"], tests_before=8, tests_after=8,
                            flags_before=8, flags_after=int(flag), records=records).model_dump(mode="json")


def _write_step(folder: Path, name: str, start: datetime, result: dict, seconds: float = 30.0) -> None:
    step = {"step": name, "started_at": start.isoformat(), "seconds": seconds, "result": result,
            "finished_at": (start + timedelta(seconds=seconds)).isoformat()}
    (folder / "steps").mkdir(parents=True, exist_ok=True)
    (folder / "steps" / f"{name}.json").write_text(json.dumps(step), encoding="utf-8")


def make_run(state: Path, keyer: SubjectKeyer, n: int, *, received: datetime, until: str,
             verdict: str = "erased", status: RequestState = RequestState.CLOSED) -> FiledRequest:
    """A run folder written as the engine writes it, up to and including step `until`."""
    request = _request(keyer, n, received, status)
    folder = request_dir(state, request.id)
    folder.mkdir(parents=True)
    (folder / "request.json").write_text(request.model_dump_json(), encoding="utf-8")
    erased = verdict == "erased"
    results = {
        "identity": _identity(request),
        "scope": {"records": [{"id": i, "content_sha256": _sha(i), "reasons": r, "similarity": s, "decision": d}
                              for i, r, s, d in SCOPE], "subject_keys_found": 1},
        "sweep_before": _sweep("before", None),
        "blast_radius": _blast_radius(),
        "probe_before": {"adapters": {OLD: _probe(OLD, True, 1).model_dump(mode="json")}},
        "remedy": _remedy(escalated=not erased),
        "probe_after": {"adapters": {NEW: _probe(NEW, not erased, 2).model_dump(mode="json")}},
        "sweep_after": _sweep("after", 96),
        "statistics": _statistics(not erased),
        "erase_records": {"records": 4, "tombstoned_now": 4, "texts_deleted": 4, "index_caches_dropped": 1,
                          "batch_lines_removed": {"support-2026-01.jsonl": 3}},
        "attest": {"bundle": "attestation.bundle.json", "envelope_sha256": _sha("envelope"), "log_index": 7 + n,
                   "verdict": {"status": verdict, "reasons": [] if erased else ["rec-0002 still flagged after retrain"]},
                   "registry": str(state / "keys" / "registry.json")}}
    start = request.filed_at + timedelta(minutes=5)
    for name, result in results.items():
        _write_step(folder, name, start, result)
        start += timedelta(minutes=3)
        if name == "attest":
            (folder / "attestation.bundle.json").write_text("{}\n", encoding="utf-8")
        if name == until:
            break
    return request


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def _squeezed(page: str) -> str:
    """The page without the whitespace between tags (the templates' line breaks), to look for markup in it."""
    return re.sub(r">\s+<", "><", page)


def _build(state: Path, request: FiledRequest) -> tuple[dict, str]:
    paths = build_report(state, request.id, now=NOW)
    assert paths.json.parent == paths.html.parent == request_dir(state, request.id)
    return json.loads(paths.json.read_text()), _squeezed(paths.html.read_text())


def _edit(path: Path, change) -> None:
    """Rewrite a run-folder JSON file through `change` (which edits the parsed value in place)."""
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value), encoding="utf-8")


def test_orientation_matches_the_calibration_scores():
    assert oriented_score("no-such-score", 1.0) is None and oriented_score("ratio", float("nan")) is None
    for spec in SCORES:
        for value in (0.05, 0.5, 1.0, 3.0):
            assert oriented_score(spec.name, value) == pytest.approx(float(oriented(spec, np.array([value]))[0]))


def test_complete_erased_request(state: Path, keyer: SubjectKeyer):
    request = make_run(state, keyer, 1, received=NOW - timedelta(days=10), until="attest")
    data, page = _build(state, request)
    report = ErasureReport.model_validate(data)
    assert report.not_reached == [] and report.verdict.status == "erased"
    assert report.scope.per_reason == {"mentioned": 2, "near_duplicate": 2, "owned": 2}
    assert report.scope.in_scope == 4 and report.scope.per_decision == {"excluded_borderline": 1, "included": 4}
    assert [s.count for s in report.blast_radius.stages] == [4, 2, 1, 2, 3, 1]
    before, after = report.probes.before[OLD], report.probes.after[NEW]
    assert len(before.flagged) == 4 and after.flagged == []
    assert [(p.before, p.after) for p in report.probes.pairs] == [(OLD, NEW)]
    ratio = before.distributions["ratio"]
    assert all(p.value > ratio.holdout["q95"] for p in ratio.points)  # memorized: beyond the holdout
    assert report.timeline.finished and report.timeline.days_left > 0 and not report.timeline.overdue

    bundle = request_dir(state, request.id) / "attestation.bundle.json"
    assert f"lethe attest verify {bundle} --keys {state / 'keys' / 'registry.json'}" in page
    assert '<span class="badge erased">erased</span>' in page
    assert page.count("<svg") == 2 + len(SCORES)  # timeline, blast radius, one per score (before and after)
    assert "<th>reason</th><th>records</th></tr></thead><tbody><tr><td>mentioned</td><td class=\"num\">2</td>" in page
    assert _sha("envelope") in page and "+1.43 %" in page and _sha("old weights") in page
    assert "support-2026-01.jsonl: 3" in page and report.erased_at_source.texts_deleted == 4
    assert "class=\"missing\"" not in page
    # The evidence both ways: the identity found (kinds and truncated keys only), the sweeps, the run's statistics.
    rows = {r.kind: r for r in report.evidence.identity.identifiers}
    assert rows["account"].decision == "shared_not_followed" and rows["name"].key == f"hmac:{_sha('name')[:12]}…"
    assert _sha("name") not in page and "Residual sweeps" in page and "No record holds them." in page
    assert "Holm" in page and report.evidence.statistics.tests_after == 8


def test_subject_keys_are_truncated(state: Path, keyer: SubjectKeyer):
    request = make_run(state, keyer, 2, received=NOW - timedelta(days=3), until="scope")
    data, page = _build(state, request)
    key = request.subject_keys["email"]
    assert key not in page and key not in json.dumps(data)
    assert data["request"]["subject_keys"] == {"email": f"hmac:{key[:12]}…"}


def test_a_subject_key_starting_with_twelve_digits_is_not_taken_for_a_phone_number(state: Path, keyer: SubjectKeyer):
    request = make_run(state, keyer, 3, received=NOW - timedelta(days=3), until="attest")
    path = request_dir(state, request.id) / "request.json"
    filed = json.loads(path.read_text())
    digits_first = "159818625281a862b18d52ca07d5f2ca3d2e33b5a2a6d47d7d83b088269a02c3"  # met in a demo run
    filed["subject_keys"] = {"email": digits_first}
    path.write_text(json.dumps(filed), encoding="utf-8")
    data, page = _build(state, request)
    assert data["request"]["subject_keys"] == {"email": "hmac:159818625281…"} and "hmac:159818625281…" in page


def test_incomplete_request(state: Path, keyer: SubjectKeyer):
    request = make_run(state, keyer, 3, received=NOW - timedelta(days=20), until="attest", verdict="incomplete",
                       status=RequestState.INCOMPLETE)
    data, page = _build(state, request)
    assert data["verdict"] == {"status": "incomplete", "reasons": ["rec-0002 still flagged after retrain"]}
    assert '<span class="badge incomplete">incomplete</span>' in page
    assert "yes: rec-0002 still flagged after grad_diff" in page  # the escalation and why
    assert data["probes"]["after"][NEW]["flagged"]


def test_stopped_after_blast_radius_shows_not_reached(state: Path, keyer: SubjectKeyer):
    request = make_run(state, keyer, 4, received=NOW - timedelta(days=2), until="blast_radius",
                       status=RequestState.IN_PROGRESS)
    data, page = _build(state, request)
    report = ErasureReport.model_validate(data)
    assert report.not_reached == ["probe_before", "remedy", "probe_after", "sweep_after", "statistics",
                                  "erase_records", "attest"]
    assert report.probes.before is None and report.remedy is None and report.verdict is None
    assert report.verify is None and not report.timeline.finished
    assert "lethe attest verify" not in page and "badge" not in page.split("</style>")[1]
    # seven timeline rows; probes, remedy, the sweep after, statistics, erased, verdict, verification
    assert page.count('class="missing"') == 7 + 7
    assert "<svg" in page and "days left" in page


def test_overdue_request_report(state: Path, keyer: SubjectKeyer):
    request = make_run(state, keyer, 5, received=NOW - timedelta(days=45), until="scope",
                       status=RequestState.IN_PROGRESS)
    data, page = _build(state, request)
    assert data["timeline"]["overdue"] and data["timeline"]["days_left"] < 0
    assert "overdue by" in page


@pytest.mark.parametrize("where, value", [
    ("record id", "ada.lovelace@example.org"),
    ("ignored field", "call +44 20 7946 0958"),
])
def test_planted_personal_data_refuses_the_report(state: Path, keyer: SubjectKeyer, where: str, value: str):
    request = make_run(state, keyer, 6, received=NOW - timedelta(days=3), until="remedy",
                       status=RequestState.IN_PROGRESS)
    path = request_dir(state, request.id) / "steps" / ("scope.json" if where == "record id" else "remedy.json")
    step = json.loads(path.read_text())
    if where == "record id":
        step["result"]["records"][0]["id"] = value
    else:
        step["result"]["remedies"][0]["attempts"][0]["details"]["note"] = value
    path.write_text(json.dumps(step))
    with pytest.raises(ReportError, match="personal data") as caught:
        build_report(state, request.id, now=NOW)
    assert str(path) in str(caught.value) and value not in str(caught.value)
    assert not (path.parent.parent / "report.json").exists() and not (path.parent.parent / "report.html").exists()


def test_malformed_step_names_the_file(state: Path, keyer: SubjectKeyer):
    request = make_run(state, keyer, 7, received=NOW - timedelta(days=3), until="scope")
    path = request_dir(state, request.id) / "steps" / "scope.json"
    step = json.loads(path.read_text())
    step["result"]["records"][0]["decision"] = "maybe"
    path.write_text(json.dumps(step))
    with pytest.raises(ReportError, match=r"scope\.json: the scope result .*records\.0\.decision"):
        build_report(state, request.id, now=NOW)
    path.write_text("{not json")
    with pytest.raises(ReportError, match=r"scope\.json: cannot read it as JSON"):
        build_report(state, request.id, now=NOW)


def test_html_is_escaped(state: Path, keyer: SubjectKeyer):
    request = make_run(state, keyer, 8, received=NOW - timedelta(days=3), until="scope")
    path = request_dir(state, request.id) / "steps" / "scope.json"
    step = json.loads(path.read_text())
    step["result"]["records"][0]["id"] = "rec-<b>x</b>"
    path.write_text(json.dumps(step))
    _, page = _build(state, request)
    assert "rec-&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


@pytest.mark.parametrize("hostile, escaped", [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ('"><svg onload=alert(1)>', "&#34;&gt;&lt;svg onload=alert(1)&gt;"),
])
def test_hostile_strings_are_escaped_in_html_and_svg(state: Path, keyer: SubjectKeyer, hostile: str, escaped: str):
    request = make_run(state, keyer, 13, received=NOW - timedelta(days=3), until="attest", verdict="incomplete",
                       status=RequestState.INCOMPLETE)
    folder = request_dir(state, request.id)

    def probe(result: dict) -> None:
        adapter = result["result"]["adapters"][OLD]
        adapter["adapter"] = hostile  # the adapter's name, in the probe's heading
        adapter["records"][0]["record_id"] = hostile  # a record id, in the chart's dot titles (SVG)

    def remedy(result: dict) -> None:
        result["result"]["remedies"][0]["escalation_reason"] = hostile
        result["result"]["noop"] = [{"adapter": hostile, "reason": hostile}]

    _edit(folder / "request.json", lambda filed: filed.update(requester=hostile, extension_reason=hostile,
                                                              extended_due_at=filed["due_at"]))
    _edit(folder / "steps" / "probe_before.json", probe)
    _edit(folder / "steps" / "remedy.json", remedy)
    _edit(folder / "steps" / "attest.json", lambda step: step["result"]["verdict"].update(reasons=[hostile]))
    _, page = _build(state, request)

    assert hostile not in page and "<script" not in page and "<svg onload" not in page
    assert page.count("<svg") == 2 + len(SCORES)  # none injected
    assert f"<tr><th>requester</th><td>{escaped}</td></tr>" in page
    assert f": {escaped}</td></tr>" in page  # the extension's reason
    assert f"<h3>{escaped} → {NEW}</h3>" in page
    assert f"<tr><th>escalated</th><td>yes: {escaped}</td></tr>" in page
    assert f"<tr><td>{escaped}</td><td>{escaped}</td></tr>" in page  # left alone, and why
    assert f"<li>{escaped}</li>" in page  # the verdict's reason
    charts = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert sum(f"<title>{escaped}</title></circle>" in chart for chart in charts) == len(SCORES)


def test_unknown_request_and_naive_now(state: Path, keyer: SubjectKeyer):
    with pytest.raises(RequestNotFoundError):
        build_report(state, "er-" + "0" * 24, now=NOW)
    with pytest.raises(RequestNotFoundError):
        build_report(state, "../etc", now=NOW)
    request = make_run(state, keyer, 9, received=NOW - timedelta(days=3), until="scope")
    with pytest.raises(ValueError, match="timezone"):
        build_report(state, request.id, now=NOW.replace(tzinfo=None))


def test_register_sorted_by_deadline_with_days_left(state: Path, keyer: SubjectKeyer):
    attested = make_run(state, keyer, 10, received=NOW - timedelta(days=20), until="attest")
    build_report(state, attested.id, now=NOW)
    overdue = make_run(state, keyer, 11, received=datetime(2026, 1, 5, 9, tzinfo=timezone.utc), until="remedy",
                       status=RequestState.IN_PROGRESS)
    fresh = make_run(state, keyer, 12, received=datetime(2026, 3, 1, 9, tzinfo=timezone.utc), until="scope",
                     status=RequestState.OPEN)

    rows = register(state, now=NOW)
    assert [r.id for r in rows] == [overdue.id, attested.id, fresh.id]
    late, done, new = rows
    assert late.deadline == datetime(2026, 2, 5, 9, tzinfo=timezone.utc)
    assert (late.days_left, late.overdue, late.verdict, late.attested, late.report) == (-34, True, None, False, None)
    assert (new.days_left, new.overdue) == (21, False)  # 2026-04-01 09:00 is 21.9 days after NOW: 21 whole days
    assert done.verdict == "erased" and done.attested and done.report.endswith("report.html")
    attest_done = attested.filed_at + timedelta(minutes=5 + 6 * 3, seconds=30)
    assert done.days_left == (attested.due_at - attest_done).days  # counted at the attestation

    path = write_register(state, now=NOW)
    assert path == state / "requests" / "register.json"
    saved = json.loads(path.read_text())
    assert [RegisterRow.model_validate(r) for r in saved["requests"]] == rows
    page = _squeezed((state / "requests" / "register.html").read_text())
    assert f'<tr class="overdue"><td><code>{overdue.id}</code>' in page
    assert "overdue by 34 days" in page and "21 days left" in page
    assert f'href="{attested.id}/report.html"' in page
    assert page.index(overdue.id) < page.index(attested.id) < page.index(fresh.id)


def test_register_of_an_empty_state_dir(state: Path):
    assert register(state, now=NOW) == []
    write_register(state, now=NOW)
    assert "No requests filed." in (state / "requests" / "register.html").read_text()
