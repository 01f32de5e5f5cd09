"""The auditor in the browser: reports inline, downloads, verifying an uploaded bundle (good and tampered), and the
transparency log's checkpoint and consistency."""

from __future__ import annotations

import base64
import json

from erasure.keyring import KeyringPaths
from erasure.requests import request_dir
from lethe.api import Role
from tests.console.browsing import Tab


def _verify(tab: Tab, name: str, data: bytes) -> dict[str, tuple[str, str]]:
    """Upload `data` as the bundle; step name -> (result, detail) as the page shows them."""
    tab.open("/console/auditor/verify")
    tab.page.get_by_label("Attestation bundle").set_input_files(
        files=[{"name": name, "mimeType": "application/json", "buffer": data}])
    tab.page.get_by_role("button", name="Verify").click()
    tab.page.wait_for_load_state()
    rows = {}
    for row in tab.page.locator("table.checks tbody tr").all():
        rows[row.get_attribute("data-step")] = (row.locator(".result").inner_text(), row.locator(".detail").inner_text())
    return rows


def _tampered(bundle: bytes) -> bytes:
    """The bundle with its statement's verdict rewritten, both still canonical JSON: only the signature, which no
    longer covers the payload, can tell."""
    value = json.loads(bundle)
    envelope = value["envelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["verdict"]["status"] = "incomplete"
    envelope["payload"] = base64.b64encode(_canonical(statement)).decode()
    return _canonical(value)


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_reports_show_inline_and_the_bundle_and_registry_download(console, browser, screenshots):
    attested, state = console["attested"], console["settings"].state_dir
    with Tab(browser, console, screenshots, Role.AUDITOR) as tab:
        tab.open("/console/auditor", "auditor-reports")
        row = tab.page.locator("tr", has=tab.page.locator(f"text={attested}"))
        assert "erased" in row.inner_text()
        row.get_by_role("link", name="report").click()
        frame = tab.page.frame_locator("iframe.report")
        assert "Erasure report" in frame.locator("h1").inner_text()
        tab.check("auditor-report")
        with tab.page.expect_download() as bundle:
            tab.page.get_by_role("link", name="Download the attestation bundle").click()
        saved = bundle.value.path().read_bytes()
        assert saved == (request_dir(state, attested) / "attestation.bundle.json").read_bytes()
        with tab.page.expect_download() as registry:
            tab.page.get_by_role("link", name="Download the key registry").click()
        assert registry.value.path().read_bytes() == KeyringPaths.under(state).registry.read_bytes()
        alone = tab.open(f"/console/auditor/requests/{attested}/report.html")
        assert "sandbox" in alone.headers["content-security-policy"]
        tab.page.emulate_media(media="print")
        tab.page.pdf(path=str(screenshots / "auditor-report-print.pdf"))


def test_an_uploaded_bundle_is_verified_check_by_check_and_a_tampered_one_fails_its_check(console, browser,
                                                                                        screenshots):
    bundle = (request_dir(console["settings"].state_dir, console["attested"]) / "attestation.bundle.json").read_bytes()
    with Tab(browser, console, screenshots, Role.AUDITOR) as tab:
        tab.open("/console/auditor/verify", "auditor-verify")
        good = _verify(tab, "good.bundle.json", bundle)
        assert tab.page.locator("#verdict").inner_text().startswith("verified: signed by ")
        assert {name: result for name, (result, _) in good.items() if result != "skipped"} == dict.fromkeys(
            ["bundle", "envelope", "signature", "payload_type", "statement_type", "predicate", "signing_key_window",
             "evidence", "checkpoint", "inclusion"], "pass")
        assert good["inclusion"][1] == "entry 0 of 1"
        tab.check("auditor-verified")
        bad = _verify(tab, "tampered.bundle.json", _tampered(bundle))
        assert bad["signature"][0] == "FAIL" and bad["envelope"][0] == "pass"
        assert all(result == "skipped" for name, (result, _) in bad.items() if name not in
                   ("bundle", "envelope", "signature"))
        verdict = tab.page.locator("#verdict").inner_text()
        assert verdict.startswith("NOT VERIFIED (SignatureError, exit code") and bad["signature"][1] in verdict
        tab.check("auditor-tampered")
        garbage = _verify(tab, "notes.txt", b"not json at all")
        assert garbage["bundle"][0] == "FAIL" and "NOT VERIFIED (InputError" in tab.page.locator("#verdict").inner_text()


def test_a_bundle_over_the_upload_limit_is_answered_with_a_console_page_naming_the_limit(console, browser,
                                                                                      screenshots, tmp_path):
    with Tab(browser, console, screenshots, Role.AUDITOR) as tab:
        for name, size in (("over-the-file-limit", 17 * 2**20), ("over-the-form-limit", 40 * 2**20)):
            big = tmp_path / f"{name}.json"  # sparse: a path, not a buffer, so Chromium reads it from the disk
            with big.open("wb") as handle:
                handle.truncate(size)
            tab.open("/console/auditor/verify")
            tab.page.get_by_label("Attestation bundle").set_input_files(big)
            with tab.page.expect_navigation() as sent:
                tab.page.get_by_role("button", name="Verify").click()
            assert sent.value.status == 413 and tab.page.title() == "Too large · Lethe console"
            message = tab.page.locator(".problems").inner_text()
            assert "up to 16 MiB each" in message and "Nothing of it was read or kept" in message, message
            tab.check(f"auditor-verify-{name}")  # the console's layout, with the role
            tab.page.get_by_role("link", name="Back to your pages").click()
            assert tab.page.url.endswith("/console/auditor")


def test_the_log_shows_its_checkpoint_and_proves_consistency_from_an_older_one(console, browser, screenshots):
    bundle = json.loads((request_dir(console["settings"].state_dir, console["attested"])
                         / "attestation.bundle.json").read_bytes())
    older = bundle["log"]["checkpoint"]
    with Tab(browser, console, screenshots, Role.AUDITOR) as tab:
        tab.open("/console/auditor/log", "auditor-log")
        assert tab.page.locator("#tree-size").inner_text() == "2"
        assert tab.page.locator("#checkpoint").inner_text().startswith("lethe")
        tab.page.get_by_label("Or the older checkpoint note").fill(older)
        tab.page.get_by_role("button", name="Prove consistency").click()
        assert "the log grew from size 1 to 2" in tab.page.locator("#consistency-verified").inner_text()
        assert tab.page.locator("#proof li").count() >= 1
        tab.check("auditor-consistency")
        tab.page.get_by_label("Older tree size").fill("5")
        tab.page.get_by_role("button", name="Prove consistency").click()
        assert "5" in tab.page.locator(".problems").inner_text()
