"""The Dagster pipeline end to end on a small demo corpus: real Dagster instance, Neo4j, peft, Presidio."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from lineage.content_store import ContentStore
from lineage.store.writers import LineageWriter
from tests.pipeline_support import PEPPER, TRAIN_CONFIG, probe_trained_canaries

# Exposure bits per repeated canary, on average over the canaries; why 5, and what was measured: below.
EXPOSURE_BITS_PER_CANARY = 5.0


@pytest.fixture
def corpus(shared_pipeline):
    """The demo corpus the session's pipeline trained on (tests/conftest.py: `shared_pipeline`)."""
    return shared_pipeline.corpus


def test_every_file_of_the_state_folder_and_the_neo4j_store_is_the_owners_alone(pipeline, neo4j_server):
    """Content store, batch files, quarantine, logs, Dagster storage, models, indexes and the Neo4j store:
    0600 files and 0700 folders although the pipeline ran under a umask of 022."""
    roots = [pipeline["state"]] + ([neo4j_server.local_server_dir] if neo4j_server.uses_local_server else [])
    loose = [f"{path} {stat.S_IMODE(path.lstat().st_mode):o}" for root in roots for path in [root, *root.rglob("*")]
             if not path.is_symlink() and path.lstat().st_mode & 0o077]
    assert not loose, loose[:20]
    assert (pipeline["state"] / "content.sqlite").is_file() and any((pipeline["state"] / "batches").iterdir())


def output(result, step: str):
    return result.output_for_node(step)


def test_every_trained_record_has_a_full_path_and_holdout_records_none(pipeline, corpus):
    graph, plan = pipeline["graph"], output(pipeline["train"], "dataset_version")
    trained = {rid for s in plan.shards for rid, _ in s.records}
    held = {rid for rid, _ in plan.holdout}
    assert trained | held == {r["id"] for r in corpus.records} and not trained & held
    rows = graph.read(
        "MATCH (r:Record)-[:IN]->(s:Shard)-[:PART_OF]->(d:DatasetVersion {id: $id}) "
        "MATCH (run:FineTuneRun)-[:TRAINED_ON]->(s) MATCH (run)-[:PRODUCED]->(a:Adapter)-[:MERGED_INTO]->(served:Adapter) "
        "MATCH (served)-[:DEPLOYED_TO]->(dep:Deployment) RETURN collect(DISTINCT r.id) AS ids, "
        "collect(DISTINCT served.id) AS served, collect(DISTINCT dep.id) AS deployments", id=plan.version.id)[0]
    assert set(rows["ids"]) == trained and len(rows["served"]) == 1 and rows["deployments"] == ["support-bot"]
    linked = graph.read("MATCH (r:Record)-[:HELD_OUT]->(:DatasetVersion {id: $id}) "
                        "OPTIONAL MATCH (r)-[:IN]->(:Shard)<-[:TRAINED_ON]-(run) RETURN r.id AS id, count(run) AS runs",
                        id=plan.version.id)
    assert {row["id"] for row in linked} == held and all(row["runs"] == 0 for row in linked)


def test_calibration_leaves_out_held_out_records_sharing_a_person_with_training(pipeline, corpus):
    # The corpus names another customer in about 5% of tickets. A held-out customer named in a trained
    # ticket is someone the model read about, and a held-out ticket naming a trained customer holds text
    # the model read: probes must calibrate on neither.
    from erasure.remediation import probe_served_adapter
    from lethe.wiring import erasure_context
    from lineage.store import queries

    graph, plan = pipeline["graph"], output(pipeline["train"], "dataset_version")
    held = {rid for rid, _ in plan.holdout}
    trained = {rid for s in plan.shards for rid, _ in s.records}
    customers = corpus.truth["customers"]
    named = {rid for m in corpus.truth["mentions"] if m["record_id"] in trained
             for rid in customers[m["mentioned_customer"]]["record_ids"] if rid in held}
    naming = {m["record_id"] for m in corpus.truth["mentions"] if m["record_id"] in held
              and set(customers[m["mentioned_customer"]]["record_ids"]) & trained}
    left_out = queries.holdout_sharing_people_with_training(graph, plan.version.id)
    assert named and naming and left_out == named | naming  # none missed, no other held-out record dropped
    record = probe_served_adapter(erasure_context(pipeline["settings"], graph),
                                  Path(output(pipeline["train"], "fine_tune")["path"]), [sorted(trained)[0]])
    assert record.before.holdout_ids == len(held) - len(left_out)
    assert list(record.stage_seconds) == ["prepare", "probe_before"]


def test_adapter_digest_in_the_graph_matches_the_file(pipeline):
    from unlearning.base_model import model_dir_sha256

    served = output(pipeline["train"], "fine_tune")
    stored = pipeline["graph"].read("MATCH (a:Adapter {id: $id}) RETURN a.sha256 AS sha, a.uri AS uri", id=served["id"])[0]
    assert stored["sha"] == model_dir_sha256(Path(served["path"])) == served["sha256"]
    assert stored["uri"].endswith("/served")
    checks = pipeline["train"].get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


def test_pii_scan_links_mentioned_customers_with_keys_only(pipeline, corpus):
    from lineage.keys import SubjectKeyer

    keyer, graph = SubjectKeyer(bytes.fromhex(PEPPER)), pipeline["graph"]
    for mention in corpus.truth["mentions"][:5]:
        other = corpus.truth["customers"][mention["mentioned_customer"]]
        key = keyer.key("email", other["email"])
        found = graph.read("MATCH (:Record {id: $r})-[:MENTIONS]->(s:Subject {key: $k}) RETURN count(s) AS n",
                           r=mention["record_id"], k=key)[0]["n"]
        assert found == 1, mention
    everything = json.dumps(graph.read("MATCH (n) RETURN properties(n) AS p"), default=str)
    for customer in corpus.truth["customers"]:
        assert customer["email"] not in everything and customer["name"] not in everything


def test_the_adapter_memorized_the_repeated_canaries_but_not_the_holdout(pipeline, corpus):
    from unlearning.adapters import sequence_nll

    plan, served = output(pipeline["train"], "dataset_version"), output(pipeline["train"], "fine_tune")
    content = ContentStore(pipeline["settings"].content_store_path)
    base = pipeline["env"]["LETHE_BASE_MODEL"]
    held_ids = {rid for rid, _ in plan.holdout}
    repeated = [c for c in corpus.truth["canaries"] if c["repeated"] and c["record_ids"][0] not in held_ids]
    canary_ids = [c["record_ids"][0] for c in repeated]
    canary_texts = list(content.get_many(canary_ids).values())
    held_texts = list(content.get_many([rid for rid, _ in plan.holdout]).values())
    assert canary_texts and held_texts
    canary_base, canary_adapted = sequence_nll(base, None, canary_texts), sequence_nll(base, Path(served["path"]), canary_texts)
    held_base, held_adapted = sequence_nll(base, None, held_texts), sequence_nll(base, Path(served["path"]), held_texts)
    # Records are sharded by owner, so a canary's copies train one shard adapter of four and the merged
    # (mean) adapter keeps a quarter of that shard's delta: every canary's NLL ratio must still sit below
    # every holdout record's, and the holdout's mean NLL drop must stay under a quarter of the canaries'.
    ratios = [round(a / b, 3) for a, b in zip(canary_adapted, canary_base)]
    held_ratios = [a / b for a, b in zip(held_adapted, held_base)]
    assert max(ratios) < min(held_ratios), (ratios, min(held_ratios))
    canary_gap = sum(b - a for a, b in zip(canary_adapted, canary_base)) / len(canary_base)
    held_gap = sum(b - a for a, b in zip(held_adapted, held_base)) / len(held_base)
    assert held_gap < 0.25 * canary_gap, (held_gap, canary_gap)


def test_probes_flag_the_repeated_canaries_and_about_alpha_of_the_holdout(pipeline, corpus):
    probe = probe_trained_canaries(pipeline, corpus)
    report, config, holdout, scope, repeated, pairs = (probe.report, probe.config, probe.holdout, probe.scope,
                                                       probe.repeated, probe.pairs)
    assert len(repeated) >= 2 and len(holdout) >= 30
    assert set(repeated) <= set(report.flagged), report.flagged
    # "About alpha": leave-one-out over n holdout records; more than alpha + 2 binomial SDs would be a miscalibration.
    n = len(holdout)
    assert report.holdout_false_flag_rate <= config.alpha + 2 * (config.alpha * (1 - config.alpha) / n) ** 0.5
    # Memorized beyond chance, together: under chance 2^-exposure is uniform, so the bits of k canaries sum to
    # a Gamma(k) / ln 2 and P(sum >= 5k bits) = 0.008 for k = 2. Measured on this corpus across training seeds
    # 0-11 (2026-12-05, 255 candidates): the two canaries' sum was 13.7 to 16 bits, one canary alone as low as
    # 5.7 bits (an Intel Xeon saw 4.4), so a per-canary bar would test the CPU, not the probe.
    assert sum(trained.exposure for trained, _ in pairs) >= EXPOSURE_BITS_PER_CANARY * len(pairs), pairs
    # The look-alikes never trained on stay below the same bar, summed. Not per control: one control's format
    # is likely under the base model alone (3.8 bits), and learning the canaries' format lifts it. Measured
    # over training seeds 0-5 with each engine (2026-12-06, `python -m bench.engine_seeds`): that control
    # at 3.4-6.4 bits (loop) and 3.1-7.0 (Trainer), the other at most 1.0; their sum at most 7.8 bits,
    # against 14.4-16 for the trained canaries.
    controls = [control for _, control in pairs]
    assert sum(c.exposure for c in controls) < EXPOSURE_BITS_PER_CANARY * len(pairs), controls
    assert report.auc["ratio"].forget == len(scope) and report.auc["ratio"].holdout == n
    dumped = report.model_dump_json()  # ids and figures only: no record text goes into a report
    assert all(text[:40] not in dumped for text in scope.values())


def test_lethe_probe_cli_flags_memorized_records_and_writes_no_personal_data(pipeline, corpus, tmp_path):
    from typer.testing import CliRunner

    from lethe.cli.main import app

    plan, served = output(pipeline["train"], "dataset_version"), output(pipeline["train"], "fine_tune")
    held = {rid for rid, _ in plan.holdout}
    repeated = [c["record_ids"][0] for c in corpus.truth["canaries"] if c["repeated"] and c["record_ids"][0] not in held]
    plain = [c["record_ids"][0] for c in corpus.truth["canaries"] if not c["repeated"]][:1]
    out = tmp_path / "probe.json"
    args = ["probe", "--adapter", served["path"], "--out", str(out)]
    for rid in repeated + plain:
        args += ["--record", rid]
    result = CliRunner().invoke(app, args, env=pipeline["env"])
    assert result.exit_code == 1, result.output  # 1: something is memorized
    report = json.loads(out.read_text())
    assert set(repeated) <= set(report["flagged"])
    by_id = {r["record_id"]: r for r in report["records"]}
    codes = [[e for e in by_id[rid]["exposures"] if e["kind"] == "SECRET_CODE" and not e["control"]]
             for rid in repeated]  # Presidio found each recovery code and the exposure test ran on it
    assert all(codes), [by_id[rid]["exposures"] for rid in repeated]
    # Beyond chance together (see the probe test above). Measured across training seeds 0-11 at 999
    # candidates (2026-12-05): the sum was 14.3 to 17.9 bits, one code alone as low as 5.4 bits (the Xeon: 5.7).
    assert sum(c[0]["exposure"] for c in codes) >= EXPOSURE_BITS_PER_CANARY * len(codes), codes
    said = report["extraction"]["requested"]["person"]  # the records' owners, prompted and scanned
    assert said["greedy"] > 0 and said["prompts"]["context"] > 0
    assert all(r["regurgitation_cosine"] is not None for r in by_id.values())
    written = out.read_text() + result.output
    for customer in corpus.truth["customers"]:
        for field in ("email", "phone", "account_id", "name"):
            assert customer[field] not in written

    unknown = CliRunner().invoke(app, ["probe", "--adapter", served["path"], "--record", "no-such-record"],
                                 env=pipeline["env"])
    assert unknown.exit_code == 4 and "no text in the content store" in unknown.output


def test_records_under_an_open_erasure_request_block_fine_tune(scratch_pipeline, corpus):
    from datetime import datetime, timezone

    from lineage.keys import SubjectKeyer
    from lineage.models import Edge, ErasureRequest, RequestStatus

    pipeline = scratch_pipeline
    graph, defs, instance = pipeline["graph"], pipeline["defs"], pipeline["instance"]
    now = datetime.now(timezone.utc)
    request = ErasureRequest(id="req-open", regime="gdpr", received_at=now, due_at=now)
    key = SubjectKeyer(bytes.fromhex(PEPPER)).key("email", corpus.truth["customers"][3]["email"])
    writer = LineageWriter(graph)
    writer.nodes([request])
    writer.edges("TARGETS", [Edge(source=request.id, target=key)])
    try:
        result = defs.resolve_job_def("train_adapters").execute_in_process(
            instance=instance, run_config=TRAIN_CONFIG, raise_on_error=False)
    finally:
        writer.nodes([request.model_copy(update={"status": RequestStatus.CLOSED})])
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [c.check_name for c in failed] == ["no_open_erasure_requests"]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "fine_tune" not in materialized


def test_an_erased_record_back_from_a_stale_snapshot_blocks_fine_tune(scratch_pipeline):
    pipeline = scratch_pipeline
    graph, defs, instance = pipeline["graph"], pipeline["defs"], pipeline["instance"]
    plan = output(pipeline["train"], "dataset_version")
    victim = plan.shards[0].records[0][0]
    from datetime import datetime, timezone
    LineageWriter(graph).tombstone([victim], datetime.now(timezone.utc))
    adapters_before = graph.read("MATCH (a:Adapter) RETURN count(a) AS n")[0]["n"]
    # The stored raw_records outputs predate the erasure: a stale snapshot that still lists the record.
    result = defs.resolve_job_def("train_adapters").execute_in_process(
        instance=instance, run_config=TRAIN_CONFIG, raise_on_error=False)
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [c.check_name for c in failed] == ["no_erased_records"]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "fine_tune" not in materialized and "deployment" not in materialized
    assert graph.read("MATCH (a:Adapter) RETURN count(a) AS n")[0]["n"] == adapters_before


# --- remedies (a retrain replaces the served adapter and deletes its weights: on a scratch copy) ----------

def _scope_of(corpus, plan, customers: int) -> list[str]:
    """Trained records of one repeated-canary customer (a request erases one person) and `customers` others."""
    held = {rid for rid, _ in plan.holdout}
    trained = {rid for s in plan.shards for rid, _ in s.records}
    owners = [c for c in corpus.truth["customers"] if any(
        rid in c["record_ids"] for can in corpus.truth["canaries"] if can["repeated"] for rid in can["record_ids"])][:1]
    others = [c for c in corpus.truth["customers"] if c not in owners][:customers]
    return [rid for c in owners + others for rid in c["record_ids"] if rid in trained and rid not in held]


def _remedy_in_child(settings, adapter: Path, scope: list[str], uid: int | None, conn) -> None:
    """Run `remedy_adapter` in a forked child, as user `uid` when given; send back the error it raised."""
    from lethe import wiring
    from erasure.errors import ConfigurationError
    from erasure.remediation import remedy_adapter

    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    try:
        with wiring.open_graph(settings, apply_schema=False) as graph:
            remedy_adapter(wiring.erasure_context(settings, graph), adapter, scope)
        conn.send(("finished", ""))
    except ConfigurationError as exc:
        conn.send(("ConfigurationError", str(exc)))
    except Exception as exc:  # reported to the parent, which fails the test with it
        conn.send((type(exc).__name__, str(exc)))


def test_a_model_store_without_write_permission_is_refused_and_changes_nothing(pipeline, corpus):
    """The remedy runs as a user who may not write the model store (root ignores permission bits, so a
    root test session drops to `nobody` in a forked child): a clear error, the graph and the served
    adapter untouched."""
    import multiprocessing
    import shutil
    import tempfile

    # Everything the child runs is imported before the fork: `nobody` may not read the sources (a clone
    # under a 0700 temporary folder), and remedy_adapter imports lazily.
    import erasure.remediation  # noqa: F401
    import unlearning.base_model  # noqa: F401
    import unlearning.methods.base  # noqa: F401
    import unlearning.methods.remedy  # noqa: F401
    import unlearning.probes  # noqa: F401
    from unlearning.methods.registry import get_method, parse_config

    get_method("retrain")
    parse_config("retrain", None)

    graph, settings = pipeline["graph"], pipeline["settings"]
    plan, served = output(pipeline["train"], "dataset_version"), output(pipeline["train"], "fine_tune")
    uid = 65534 if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="lethe-readonly-store-"))
    try:
        root.chmod(0o755)
        adapter = root / "adapter"
        shutil.copytree(served["path"], adapter)
        for path in [adapter, *adapter.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        state = root / "state"
        (state / "models" / "adapters").mkdir(parents=True)
        state.chmod(0o777)  # the child may write its logs, not the model store
        (state / "models").chmod(0o755)  # explicit: the process umask may be Lethe's 077 here
        (state / "models" / "adapters").chmod(0o555)
        nodes = graph.read("MATCH (n) RETURN count(n) AS n")[0]["n"]
        edges = graph.read("MATCH ()-[r]->() RETURN count(r) AS n")[0]["n"]
        receive, send = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.get_context("fork").Process(
            target=_remedy_in_child,
            args=(settings.model_copy(update={"state_dir": state}), adapter, _scope_of(corpus, plan, 4), uid, send))
        child.start()
        child.join(120)
        assert child.exitcode == 0 and receive.poll(), child.exitcode
        kind, message = receive.recv()
        assert kind == "ConfigurationError" and "is not writable" in message and "fix its permissions" in message, \
            (kind, message)
        assert not any((state / "models" / "adapters").iterdir())
    finally:
        shutil.rmtree(root)
    assert graph.read("MATCH (n) RETURN count(n) AS n")[0]["n"] == nodes
    assert graph.read("MATCH ()-[r]->() RETURN count(r) AS n")[0]["n"] == edges
    assert graph.read("MATCH (a:Adapter {id: $id}) RETURN a.state AS state", id=served["id"]) == \
        [{"state": "active"}]
    assert Path(served["path"]).is_dir()


# slow (28 s): the engine tests retrain a shard end to end in the default run (test_engine.py).
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_retrain_removes_the_records_and_keeps_the_rest(scratch_pipeline, corpus):
    from erasure.remediation import remedy_adapter
    from lethe.wiring import erasure_context
    from unlearning.base_model import model_dir_sha256

    pipeline = scratch_pipeline
    graph, settings = pipeline["graph"], pipeline["settings"]
    plan, served = output(pipeline["train"], "dataset_version"), output(pipeline["train"], "fine_tune")
    served_dir = Path(served["path"])
    scope = _scope_of(corpus, plan, customers=4)
    record = remedy_adapter(erasure_context(settings, graph), served_dir, scope)
    assert record.kind == "exact" and not record.escalated
    assert record.before.flagged and not record.after.flagged, record.after.flagged
    auc = record.after.auc["ratio"]
    # After an exact retrain the forget records are OUT, like the holdout: their AUC is chance, and with
    # 14 texts of 4-5 people against 34 the chance spread is wide (CI saw 0.38, [0.16, 0.66], on another
    # CPU; a point band of 0.40-0.60 was one standard deviation). What must hold is one-sided: no evidence
    # of memorization left, i.e. the people-resampled interval reaches down to chance.
    assert auc.ci_low <= 0.5, auc
    # Its interval resampled people (subject keys from the graph), then their texts: five customers here.
    assert 2 <= auc.forget_people <= 5 and 2 <= auc.holdout_people < auc.holdout, auc
    exposures = [e for r in record.after.records for e in r.exposures if e.kind == "SECRET_CODE" and not e.control]
    assert exposures and max(e.exposure for e in exposures) < 7.0  # chance: P(>= 7 bits) = 1/128 per code
    # Utility kept: the retained records' mean NLL within 2% of the original adapter's, either way (-1.9%
    # here: the retrained shard no longer spends steps on the 8 copies of the erased canary ticket; with
    # both repeated-canary owners erased, 16 copies, it improved by 2.5%).
    assert abs(record.utility["retain"]["relative_change"]) <= 0.02, record.utility
    # Only the shards that held scope records were retrained; the others were reused byte for byte.
    details = record.attempts[0]["details"]
    assert details["shards_retrained"]
    new_dir = Path(record.new_adapter_path)
    assert model_dir_sha256(new_dir) == record.new_adapter_sha256 and not served_dir.exists()
    rows = graph.read(
        "MATCH (n:Adapter {id: $new})-[r:REPLACES]->(o:Adapter {id: $old}) "
        "MATCH (n)-[:DEPLOYED_TO]->(:Deployment {id: 'support-bot'}) "
        "MATCH (:DatasetVersion {id: $derived})-[d:DERIVED_FROM]->(:DatasetVersion {id: $parent}) "
        "RETURN r.method AS method, o.state AS state, o.deleted_files_sha256 AS deleted, d.reason AS reason",
        new=record.new_adapter, old=record.old_adapter, derived=record.new_dataset_version, parent=plan.version.id)
    assert rows == [{"method": "retrain", "state": "deleted", "deleted": record.deleted_weights[0]["sha256"],
                     "reason": "erasure"}]
    trained_after = graph.read("MATCH (r:Record)-[:IN]->(:Shard)-[:PART_OF]->(:DatasetVersion {id: $id}) "
                               "RETURN collect(r.id) AS ids", id=record.new_dataset_version)[0]["ids"]
    assert not set(trained_after) & set(scope)


def test_a_remedy_with_nothing_to_forget_is_a_noop_with_its_reason(pipeline):
    from erasure.remediation import remedy_adapter
    from lethe.wiring import erasure_context

    graph, settings = pipeline["graph"], pipeline["settings"]
    served = Path(output(pipeline["train"], "fine_tune")["path"])
    adapters_before = graph.read("MATCH (a:Adapter) RETURN count(a) AS n")[0]["n"]
    record = remedy_adapter(erasure_context(settings, graph), served, ["t-999999"])
    assert record.noop_reason and "nothing to forget" in record.noop_reason and record.new_adapter is None
    assert graph.read("MATCH (a:Adapter) RETURN count(a) AS n")[0]["n"] == adapters_before
