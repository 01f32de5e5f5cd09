"""Training outside Lethe: a transformers Trainer with LetheLineageCallback, and `lethe adapters register`."""

from __future__ import annotations

import base64
import json
import re

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import Trainer, TrainingArguments
from typer.testing import CliRunner

from lethe.cli.main import app
from lethe.integrations.transformers import LetheLineageCallback
from unlearning.base_model import load_base_model
from tests.openlineage_schema import assert_valid
from tests.lineage.lineage_fixtures import jsonl, tickets



def _cli(env, *args):
    return CliRunner().invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)


def _dataset(env, tmp_path) -> tuple[str, list[dict]]:
    records = tickets(30)
    (tmp_path / "tickets.jsonl").write_bytes(jsonl(records))
    done = _cli(env, "ingest", tmp_path / "tickets.jsonl", "--dataset", "tickets", "--shards", "3")
    assert done.exit_code == 0, done.output
    return re.search(r"dataset version (tickets:[0-9a-f]{16})", done.output).group(1), records


class _Texts(torch.utils.data.Dataset):
    def __init__(self, tokenizer, texts):
        self.rows = [tokenizer(t, truncation=True, max_length=32, padding="max_length") for t in texts]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = {k: torch.tensor(v) for k, v in self.rows[i].items()}
        return {**row, "labels": row["input_ids"].clone()}


def _trainer(tiny_base_model, texts, out, callback) -> Trainer:
    model, tokenizer = load_base_model(tiny_base_model, device=torch.device("cpu"))
    model.train()
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(out), max_steps=3, per_device_train_batch_size=4, learning_rate=1e-3,
                             report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, seed=3)
    return Trainer(model=peft_model, args=args, train_dataset=_Texts(tokenizer, texts), callbacks=[callback])


def test_a_trainer_run_with_the_callback_is_reached_by_blast_radius(env, tmp_path, tiny_base_model, neo4j_server,
                                                                    graph):
    version, records = _dataset(env, tmp_path)
    callback = LetheLineageCallback(dataset_version=version, base_model=tiny_base_model, settings=neo4j_server)
    _trainer(tiny_base_model, [r["text"] for r in records], tmp_path / "out", callback).train()
    registered = callback.registered
    assert registered is not None and registered.shards == 3
    assert (tmp_path / "out" / "lethe-adapter" / "adapter_config.json").is_file()

    radius = json.loads(_cli(env, "blast-radius", "--subject-email", "ada.lovelace@example.com", "--json").output)
    assert registered.adapter_id in {a["id"] for a in radius["adapters"]}, radius["adapters"]
    [run] = graph.read("MATCH (r:FineTuneRun {id: $id}) RETURN r.code_version AS code, r.seed AS seed",
                       id=registered.run_id)
    assert run["code"].startswith("external:transformers.Trainer ") and run["seed"] == 3

    # The same folder registered again from the CLI: the same ids, nothing doubled; then a deployment.
    again = _cli(env, "adapters", "register", tmp_path / "out" / "lethe-adapter", "--dataset", version,
                 "--base", tiny_base_model, "--trainer", "transformers.Trainer", "--seed", "3",
                 "--deployment", "helpdesk-bot", "--form", "int8")
    assert again.exit_code == 0 and registered.adapter_id in again.output, again.output
    counts = graph.read("MATCH (a:Adapter) WITH count(a) AS adapters MATCH (r:FineTuneRun)-[t:TRAINED_ON]->() "
                        "RETURN adapters, count(DISTINCT r) AS runs, count(t) AS trained_on")[0]
    assert counts == {"adapters": 1, "runs": 1, "trained_on": 3}, counts  # a run is its data, base and adapter
    served = json.loads(_cli(env, "blast-radius", "--dataset", version, "--json").output)["deployments"]
    assert [d["id"] for d in served] == ["helpdesk-bot"]


def test_register_refuses_what_is_not_an_adapter_or_an_unknown_dataset(env, tmp_path, tiny_base_model):
    version, _ = _dataset(env, tmp_path)
    not_adapter = _cli(env, "adapters", "register", tmp_path, "--dataset", version, "--base", tiny_base_model)
    assert not_adapter.exit_code == 2 and "not a LoRA adapter directory" in not_adapter.output, not_adapter.output
    adapter = tmp_path / "a"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"x")
    unknown = _cli(env, "adapters", "register", adapter, "--dataset", "tickets:ffffffffffffffff",
                   "--base", tiny_base_model)
    assert unknown.exit_code == 4 and "lethe datasets" in unknown.output, unknown.output


# slow (an erasure with a full retrain of three shards, ~1 minute on 2 cores); CI runs it (make test-slow).
@pytest.mark.slow
def test_an_erasure_retrains_an_adapter_trained_outside_lethe(env, tmp_path, tiny_base_model, neo4j_server, graph):
    records = tickets(60)
    (tmp_path / "tickets.jsonl").write_bytes(jsonl(records))
    done = _cli(env, "ingest", tmp_path / "tickets.jsonl", "--dataset", "tickets", "--shards", "3",
                "--holdout", "0.4")
    version = re.search(r"dataset version (tickets:[0-9a-f]{16})", done.output).group(1)
    callback = LetheLineageCallback(dataset_version=version, base_model=tiny_base_model, deployment="helpdesk-bot",
                                    form="fp32", settings=neo4j_server)
    _trainer(tiny_base_model, [r["text"] for r in records], tmp_path / "out", callback).train()
    old = callback.registered.adapter_id
    manifest = json.loads((tmp_path / "out" / "lethe-adapter" / "lethe_manifest.json").read_text())
    assert manifest["dataset_version"] == version and manifest["training_config"]["r"] == 4
    assert manifest["training_config"]["learning_rate"] == 1e-3 and manifest["origin"].startswith("external:")

    # OpenLineage events of the remedy, to a file (docs/openlineage.md), as a team pointing them at Marquez would.
    events_file, config = tmp_path / "openlineage.jsonl", tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {events_file}\n  append: true\n")
    env = {**env, "LETHE_BASE_MODEL": str(tiny_base_model), "OPENLINEAGE_CONFIG": str(config)}
    (tmp_path / "request.json").write_text(json.dumps({
        "identifiers": {"email": "ada.lovelace@example.com"}, "regime": "gdpr", "requester": "legal",
        "idempotency_key": "external-1"}))
    filed = _cli(env, "erase", "file", tmp_path / "request.json")
    request_id = re.search(r"er-[0-9a-f]{24}", filed.output).group(0)
    ran = _cli(env, "erase", "run", request_id, "--no-relearn", "--relearn-off-reason", "test of external adapters")
    status = json.loads(_cli(env, "erase", "status", request_id, "--json").output)
    assert status["verdict"]["status"] == "erased", (ran.output, status["verdict"])
    [served] = graph.read("MATCH (a:Adapter)-[:DEPLOYED_TO]->(:Deployment {id: 'helpdesk-bot'}) "
                          "MATCH (a)-[:REPLACES]->(old:Adapter) RETURN a.id AS id, old.id AS old")
    assert served["old"] == old and served["id"] != old
    bundle = tmp_path / "state" / "requests" / request_id / "attestation.bundle.json"
    assert _cli(env, "attest", "verify", bundle).exit_code == 0
    # The attestation says the old adapter was trained outside Lethe, and that the remedy retrained it.
    statement = json.loads(base64.b64decode(json.loads(bundle.read_text())["envelope"]["payload"]))
    sent = [json.loads(line) for line in events_file.read_text().splitlines()]
    for event in sent:
        assert_valid(event)  # the OpenLineage spec and each facet's schema (tests/lethe/test_openlineage.py)
    outputs = {(e["job"]["name"], e["eventType"]): [o["name"] for o in e.get("outputs", [])] for e in sent}
    assert outputs[("lethe.fine_tune", "COMPLETE")] == [f"adapter/{served['id']}"], outputs
    assert outputs[("lethe.deployment", "COMPLETE")] == ["deployment/helpdesk-bot"], outputs
    assert any(name.startswith("dataset_version/tickets:") for name in outputs[("lethe.dataset_version", "COMPLETE")])
    assert "ada.lovelace" not in events_file.read_text()
    method = statement["predicate"]["method"]
    assert method["name"] == "retrain" and method["kind"] == "exact", method
    assert method["config"]["replaced_adapter_trained_by"].startswith("external:transformers.Trainer"), method
