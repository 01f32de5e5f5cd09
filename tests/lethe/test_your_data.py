"""A team's own data: their column names, chat records, JSONL/Parquet/CSV, through `lethe pipeline run FILE`."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from erasure.run_folder import step_results, steps_dir
from lethe.cli.main import app
from lethe.demo.corpus import generate_corpus
from lethe.importing import chat_renderer, import_batch
from lethe.project import load_project
from lineage.batch_files import BatchFileError
from lineage.errors import BatchRejectedError
from lineage.keys import SubjectKeyer
from lineage.mapping import RecordMapping

PEPPER = "ef" * 32
PROJECT = """
[records]
id = "ticket_id"
messages = "conversation"
source_value = "helpdesk"
created_at = "opened_at"

[records.subject]
email = "customer.email"
account_id = "account"
name = "customer.full_name"
"""


def _chat_rows(customers: int = 40, seed: int = 5) -> tuple[list[dict], object]:
    """The demo corpus's tickets as a helpdesk's chat export: other column names, a nested customer."""
    corpus = generate_corpus(customers=customers, seed=seed)
    rows = []
    for record in corpus.records:
        subject = record["subject"]
        rows.append({"ticket_id": record["id"], "opened_at": record["created_at"],
                     "account": subject.get("account_id"),
                     "customer": {"email": subject.get("email"), "full_name": subject.get("name")},
                     "conversation": [{"role": "user", "content": record["text"]},
                                      {"role": "assistant", "content": _reply(subject)}]})
    return rows, corpus


def _reply(subject: dict) -> str:
    """The agent's answer repeats what the customer gave: personal data in the assistant turn too."""
    name = (subject.get("name") or "there").split()[0]
    account = subject.get("account_id")
    return f"Thanks {name}, " + (f"account {account} is noted" if account else "we are on it") + "."


def _write_parquet(rows: list[dict], path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _project(tmp_path: Path, text: str = PROJECT) -> Path:
    path = tmp_path / "lethe.toml"
    path.write_text(text)
    return path


def test_the_same_rows_map_alike_from_jsonl_parquet_and_csv(tmp_path):
    rows, _ = _chat_rows(customers=3)
    mapping = load_project(_project(tmp_path)).records
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _write_parquet(rows, tmp_path / "c.parquet")
    with (tmp_path / "c.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["ticket_id", "opened_at", "account", "customer.email",
                                         "customer.full_name", "conversation"])
        writer.writeheader()
        for r in rows:
            writer.writerow({"ticket_id": r["ticket_id"], "opened_at": r["opened_at"], "account": r["account"],
                             "customer.email": r["customer"]["email"], "customer.full_name": r["customer"]["full_name"],
                             "conversation": json.dumps(r["conversation"])})
    keyer, render = SubjectKeyer(bytes.fromhex(PEPPER)), chat_renderer(None)
    written = {}
    for suffix in ("jsonl", "parquet", "csv"):
        imported = import_batch(tmp_path / f"c.{suffix}", mapping, tmp_path / f"b-{suffix}", keyer, render)
        assert imported.new and imported.records == len(rows)
        written[suffix] = (tmp_path / f"b-{suffix}" / imported.name).read_text().splitlines()
        assert stat.S_IMODE((tmp_path / f"b-{suffix}" / imported.name).stat().st_mode) == 0o600
    assert written["jsonl"] == written["parquet"] == written["csv"]
    first = json.loads(written["csv"][0])
    assert first["id"] == rows[0]["ticket_id"] and first["source"] == "helpdesk"
    assert first["subject"]["email"] == rows[0]["customer"]["email"]
    assert first["text"].startswith("<|im_start|>user\n") and "<|im_start|>assistant\nThanks" in first["text"]
    # Where each message sits in the rendering: the PII scan reads them one by one, the probes score by them.
    turns = first["turns"]
    assert [role for _, _, role in turns] == ["user", "assistant"]
    assert first["text"][turns[1][0]:turns[1][1]] == rows[0]["conversation"][1]["content"]


def test_importing_the_same_file_again_writes_nothing(tmp_path):
    rows, _ = _chat_rows(customers=2)
    mapping, keyer = load_project(_project(tmp_path)).records, SubjectKeyer(bytes.fromhex(PEPPER))
    path = _write_parquet(rows, tmp_path / "c.parquet")
    first = import_batch(path, mapping, tmp_path / "b", keyer, chat_renderer(None))
    again = import_batch(path, mapping, tmp_path / "b", keyer, chat_renderer(None))
    assert (first.new, again.new, first.name, first.records) == (True, False, again.name, again.records)
    assert len(list((tmp_path / "b").iterdir())) == 1


def test_a_chat_record_is_rendered_with_the_base_models_template(tmp_path, tiny_base_model):
    model = tmp_path / "model"
    shutil.copytree(tiny_base_model, model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["chat_template"] = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    render, template = chat_renderer(model)
    assert template != "chatml"
    assert render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]) == \
        "[user] hi\n[assistant] yo\n"


@pytest.mark.parametrize("change, column, problem", [
    (lambda r: r["customer"].update(email="not-an-email"), "customer.email", "email"),
    (lambda r: r.pop("ticket_id"), "ticket_id", "every record needs an id"),
    (lambda r: r.update(conversation=[{"role": "user", "content": "hi"}]), "conversation", "assistant turn"),
    (lambda r: r.update(conversation=[{"role": "robot", "content": "hi"}]), "conversation[0].role", "user"),
])
def test_a_bad_row_is_refused_naming_the_users_column_never_the_value(tmp_path, change, column, problem):
    rows, _ = _chat_rows(customers=2)
    change(rows[1])
    mapping = load_project(_project(tmp_path)).records
    path = _write_parquet(rows, tmp_path / "c.parquet")
    with pytest.raises(BatchRejectedError) as caught:
        import_batch(path, mapping, tmp_path / "b", SubjectKeyer(bytes.fromhex(PEPPER)), chat_renderer(None))
    [error] = caught.value.errors
    assert (error.line, error.field) == (2, column) and problem in error.problem, str(caught.value)
    assert "not-an-email" not in str(caught.value) and not (tmp_path / "b").exists()


@pytest.mark.parametrize("text, message", [
    ("[records]\nid = 'a'\ntext = 'b'\nmessages = 'c'\n", "either text or messages"),
    ("[records.subject]\nssn = 'x'\n", "unknown subject field"),
    ("[training]\nepochs = 0\n", "training.epochs: Input should be greater"),
    ("[records\n", "not valid TOML"),
])
def test_a_bad_project_file_is_refused_naming_the_key(tmp_path, text, message):
    env = {"LETHE_STATE_DIR": str(tmp_path / "state"), "LETHE_PEPPER": PEPPER}
    result = CliRunner().invoke(app, ["pipeline", "run", "--config", str(_project(tmp_path, text))], env=env)
    assert result.exit_code == 2 and message in result.output, result.output


def test_the_mapping_names_lethe_fields_in_the_users_words():
    mapping = RecordMapping(id="ticket_id", messages="conversation", subject={"email": "customer.email"})
    assert [mapping.user_column(f) for f in ("id", "text", "subject.email", "source")] == \
        ["ticket_id", "conversation", "customer.email", "source"]


# slow (a pipeline and an erasure through the CLI, ~2 minutes on 2 cores); CI runs it (make test-slow).
@pytest.mark.slow
def test_a_helpdesk_chat_export_is_trained_on_and_a_person_erased_by_email(tmp_path, neo4j_server, graph,
                                                                            tiny_base_model):
    rows, corpus = _chat_rows(customers=40)
    export = _write_parquet(rows, tmp_path / "helpdesk-export.parquet")
    project = _project(tmp_path, PROJECT + "\n[training]\nepochs = 20\nloss_on = \"assistant\"\n"
                                           "\n[dataset]\nholdout_fraction = 0.25\n\n[deployment]\nform = \"fp32\"\n")
    env = {"LETHE_STATE_DIR": str(tmp_path / "state"), "LETHE_PEPPER": PEPPER,
           "LETHE_BASE_MODEL": str(tiny_base_model), "NEO4J_URI": neo4j_server.resolved_neo4j_uri(),
           "NEO4J_USER": neo4j_server.neo4j_user, "NEO4J_PASSWORD": neo4j_server.resolved_neo4j_password()}
    runner = CliRunner()
    trained = runner.invoke(app, ["pipeline", "run", str(export), "--config", str(project)], env=env)
    assert trained.exit_code == 0, trained.output
    said = " ".join(trained.output.split())  # the console wraps long lines
    assert f"{len(rows)} records, imported as helpdesk-export-" in said
    assert re.search(r"dataset version \S+: 4 shard adapter\(s\); served: adapter-\w+ -> support-bot \(fp32\)",
                     said), said

    emails = sorted({r["subject"]["email"] for r in corpus.records if r["subject"].get("email")})
    radius = {e: json.loads(runner.invoke(app, ["blast-radius", "--subject-email", e, "--json"], env=env).output)
              for e in emails[:6]}
    email = next(e for e, r in radius.items() if r["adapters"])  # a customer trained on (not held out)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"identifiers": {"email": email}, "regime": "gdpr",
                                   "requester": "legal", "idempotency_key": "helpdesk-1"}))
    filed = runner.invoke(app, ["erase", "file", str(request)], env=env)
    assert filed.exit_code == 0, filed.output
    request_id = re.search(r"er-[0-9a-f]{24}", filed.output).group(0)
    # The relearning check is on in tests/erasure (test_engine, test_served_forms); here the subject is the path.
    refused = runner.invoke(app, ["erase", "run", request_id, "--generation-budget", "8"], env=env)
    assert refused.exit_code == 2 and "--generation-budget" in refused.output  # below one continuation
    erased = runner.invoke(app, ["erase", "run", request_id, "--no-relearn", "--relearn-off-reason",
                                 "test of a team's own data", "--generation-budget", "512"], env=env)
    assert erased.exit_code == 0, erased.output
    status = json.loads(runner.invoke(app, ["erase", "status", request_id, "--json"], env=env).output)
    assert status["verdict"]["status"] == "erased", status["verdict"]
    # Trained with the loss on the assistant turns, the conversations were probed on those turns.
    probed = (steps_dir(tmp_path / "state", request_id) / "probe_before.json").read_text()
    assert "chat record(s) scored on their assistant turns only" in probed
    # The extraction test ran within the budget given, and every probe report records it.
    steps = step_results(tmp_path / "state", request_id)
    for probes in (steps.probe_before, steps.probe_after):
        reports = list(probes.adapters.values())
        assert reports and all(r.config.generation_token_budget == 512 for r in reports)
        assert all(0 < x.person.tokens_budgeted <= 512 for r in reports
                   for found in r.extraction_variants().values() for x in found.values())
    bundle = tmp_path / "state" / "requests" / request_id / "attestation.bundle.json"
    verified = runner.invoke(app, ["attest", "verify", str(bundle)], env=env)
    assert verified.exit_code == 0, verified.output
    stored = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert all(not os.stat(p).st_mode & 0o077 for p in stored)


def test_without_a_mapping_a_misspelt_field_is_refused_never_dropped(tmp_path):
    # Dropped, "subjet" would leave Ada's records without an owner: her erasure would never find them.
    line = {"id": "t-1", "text": "my parcel is late", "source": "helpdesk", "subjet": {"email": "ada@example.com"}}
    (tmp_path / "t.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(BatchRejectedError) as caught:
        import_batch(tmp_path / "t.jsonl", RecordMapping(), tmp_path / "b", SubjectKeyer(bytes.fromhex(PEPPER)))
    [error] = caught.value.errors
    assert error.field == "subjet" and "lethe.toml" in error.problem and "ada@" not in str(caught.value)


def test_a_subject_column_no_row_has_is_a_typo_and_refused(tmp_path):
    rows, _ = _chat_rows(customers=2)
    mapping = load_project(_project(tmp_path, PROJECT.replace('"customer.email"', '"customer.mail"'))).records
    path = _write_parquet(rows, tmp_path / "c.parquet")
    with pytest.raises(BatchFileError, match=r"\['customer.mail'\] are in no row"):
        import_batch(path, mapping, tmp_path / "b", SubjectKeyer(bytes.fromhex(PEPPER)), chat_renderer(None))
    assert not (tmp_path / "b").exists()
