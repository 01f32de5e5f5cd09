"""An auditor checks a real erasure in the browser: the bundle and key registry that the session's coalesced erasure
run wrote (the Dagster pipeline's adapter, retrained without the person, the statement signed and logged by the
engine; tests/conftest.py: `coalesced`) are downloaded from the console, uploaded on its verify page and pass every
check that runs; the same bundle with one byte of its signed statement, or one byte of its log's inclusion proof,
changed fails, the page naming the check.

Slow (`make test-slow`): it needs the trained pipeline and the coalesced run (a shard retrain), which the default
run's erasure tests build too; on its own this module trains them first.
"""

from __future__ import annotations

import base64
import json
import re

import pytest

from attestation import KeyRegistry, verify_document
from erasure.requests import request_dir
from lethe.api import Role, create_app
from tests.console.browsing import Tab
from tests.console.conftest import Server
from tests.lethe.test_api import make_tokens
from tests.neo4j_servers import free_port

RAN = ["bundle", "envelope", "signature", "payload_type", "statement_type", "predicate", "signing_key_window",
       "evidence", "checkpoint", "inclusion"]
NOT_ASKED = {"subjects": "no files or digests given", "consistency": "no second checkpoint given"}


@pytest.fixture
def erased_console(shared_pipeline, coalesced):
    """The console served over the state folder and graph right after the coalesced run (put back after the
    test), with a token of each role, and the request attested second (its log was a tree of two by then, so its
    inclusion proof holds a hash). The graph is emptied after it, so that the console's other tests, whose
    deployment has the same name, write their own lineage back."""
    with shared_pipeline.at(coalesced["snapshot"], scratch=True) as pipeline:
        settings = pipeline["settings"]
        tokens = make_tokens(settings.state_dir / "api-tokens.json")
        try:
            with Server(create_app(settings), free_port()) as server:
                yield {"url": server.url, "tokens": tokens, "state": settings.state_dir,
                       "request": max((r.id for r in coalesced["requests"]), key=lambda rid: _log_of(settings, rid))}
        finally:
            pipeline["graph"].clear_all()


def _log_of(settings, request_id: str) -> tuple[int, int]:
    log = json.loads((request_dir(settings.state_dir, request_id) / "attestation.bundle.json").read_bytes())["log"]
    return log["tree_size"], log["index"]


def _download_evidence(tab: Tab, request_id: str) -> tuple[bytes, bytes]:
    """From the reports page, the request's report page, then its bundle and the key registry, as downloaded."""
    tab.open("/console/auditor", "erasure-auditor-reports")
    row = tab.page.locator("tr", has=tab.page.locator(f"text={request_id}"))
    assert "erased" in row.inner_text()
    row.get_by_role("link", name="report").click()
    assert "Erasure report" in tab.page.frame_locator("iframe.report").locator("h1").inner_text()
    tab.check("erasure-auditor-report")
    files = []
    for link in ("Download the attestation bundle", "Download the key registry"):
        with tab.page.expect_download() as download:
            tab.page.get_by_role("link", name=link).click()
        files.append(download.value.path().read_bytes())
    return files[0], files[1]


def _verify(tab: Tab, name: str, bundle: bytes, registry: bytes) -> tuple[dict[str, tuple[str, str]], str]:
    """Upload the bundle and the registry to trust; step name -> (result, detail) as the page shows them, and the
    verdict line."""
    tab.open("/console/auditor/verify")
    tab.page.get_by_label("Attestation bundle").set_input_files(
        files=[{"name": name, "mimeType": "application/json", "buffer": bundle}])
    tab.page.get_by_label("Key registry to trust").set_input_files(
        files=[{"name": "lethe-key-registry.json", "mimeType": "application/json", "buffer": registry}])
    tab.page.get_by_role("button", name="Verify").click()
    tab.page.wait_for_load_state()
    rows = {row.get_attribute("data-step"): (row.locator(".result").inner_text(), row.locator(".detail").inner_text())
            for row in tab.page.locator("table.checks tbody tr").all()}
    return rows, tab.page.locator("#verdict").inner_text()


def _one_byte_of_the_statement(bundle: bytes, request_id: str) -> bytes:
    """The bundle with the last character of the request id in its signed statement changed (base64 re-encoded in
    place; every other byte of the file as it was): the statement now claims another request."""
    payload = json.loads(bundle)["envelope"]["payload"]
    statement = base64.b64decode(payload)
    assert statement.count(request_id.encode()) == 1
    other = request_id[:-1] + ("0" if request_id[-1] != "0" else "1")
    changed = base64.b64encode(statement.replace(request_id.encode(), other.encode())).decode()
    assert bundle.count(payload.encode()) == 1
    return bundle.replace(payload.encode(), changed.encode())


def _one_byte_of_the_inclusion_proof(bundle: bytes) -> bytes:
    """The bundle with one bit of the first hash of its log's inclusion proof flipped (the envelope untouched)."""
    proof = json.loads(bundle)["log"]["inclusion_proof"]
    assert proof, "the request's bundle has an inclusion proof"
    flipped = bytearray(base64.b64decode(proof[0]))
    flipped[-1] ^= 1
    assert bundle.count(proof[0].encode()) == 1
    return bundle.replace(proof[0].encode(), base64.b64encode(bytes(flipped)))


def _assert_fails_at(rows: dict[str, tuple[str, str]], verdict: str, failing: str) -> None:
    """`failing` is the one FAIL row; every check before it passed and every one after it was skipped; the verdict
    line names the failure in the check's own words."""
    at = RAN.index(failing)
    assert [rows[name][0] for name in RAN[:at]] == ["pass"] * at, rows
    assert rows[failing][0] == "FAIL", rows
    assert {name: rows[name][0] for name in RAN[at + 1:] + list(NOT_ASKED)} == dict.fromkeys(
        RAN[at + 1:] + list(NOT_ASKED), "skipped"), rows
    assert re.match(r"NOT VERIFIED \(\w+Error, exit code \d+\)", verdict) and rows[failing][1] in verdict, verdict


@pytest.mark.slow
def test_an_auditor_verifies_a_real_erasures_bundle_and_a_tampered_copy_fails_naming_its_check(
        erased_console, browser, screenshots):
    request_id, run = erased_console["request"], request_dir(erased_console["state"], erased_console["request"])
    with Tab(browser, erased_console, screenshots, Role.AUDITOR) as tab:
        bundle, registry = _download_evidence(tab, request_id)
        assert bundle == (run / "attestation.bundle.json").read_bytes()  # the engine's own bundle, byte for byte
        predicate = json.loads(base64.b64decode(json.loads(bundle)["envelope"]["payload"]))["predicate"]
        assert predicate["request"]["reference"] == request_id and predicate["method"]["kind"] == "exact"
        assert predicate["verdict"]["status"] == "erased"

        rows, verdict = _verify(tab, "erased.bundle.json", bundle, registry)
        assert {name: rows[name][0] for name in RAN} == dict.fromkeys(RAN, "pass"), rows
        assert {name: rows[name] for name in NOT_ASKED} == {n: ("skipped", why) for n, why in NOT_ASKED.items()}
        assert list(rows) == ["bundle", "envelope", "signature", "payload_type", "statement_type", "predicate",
                              "signing_key_window", "evidence", "subjects", "checkpoint", "inclusion", "consistency"]
        cli = verify_document(bundle, KeyRegistry.from_json(registry, "the downloaded key registry"))
        assert rows == {s.name: ("FAIL" if s.status == "fail" else s.status, s.detail) for s in cli.steps}
        assert cli.ok and verdict == cli.summary and verdict.startswith("verified: signed by ")
        tab.check("erasure-auditor-verified")

        rows, verdict = _verify(tab, "statement-changed.bundle.json", _one_byte_of_the_statement(bundle, request_id),
                                registry)
        _assert_fails_at(rows, verdict, "signature")
        tab.check("erasure-auditor-statement-changed")
        rows, verdict = _verify(tab, "proof-changed.bundle.json", _one_byte_of_the_inclusion_proof(bundle), registry)
        _assert_fails_at(rows, verdict, "inclusion")
        assert verdict.startswith("NOT VERIFIED (InclusionError")
        tab.check("erasure-auditor-proof-changed")
