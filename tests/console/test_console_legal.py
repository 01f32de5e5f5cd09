"""Legal in the browser: filing (identifiers never in a URL, a page, a file, a log or the graph), the register's
deadlines, reviewing borderline records and extending a deadline."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from erasure.run_folder import step_results
from lethe.api import Role
from tests.console.browsing import Tab, request_id_in
from tests.lethe.test_api import EMAIL

# Typed into the filing form; found nowhere Lethe writes afterwards (compared case-insensitively).
TYPED = {"email": "Quill.Ambersmith-7f3a@example.net", "phone": "+44 20 7946 0321", "name": "Quill Ambersmith"}
NEEDLES = ("quill.ambersmith-7f3a@example.net", "quill ambersmith", "7946 0321", "79460321", "ambersmith")


def _file(tab: Tab, key: str, received: str = "", review: bool = False, browser_checks: bool = True,
          **identifiers: str) -> None:
    tab.open("/console/legal/file")
    page = tab.page
    if not browser_checks:  # what the server says when the browser's own checks are not there to stop it
        page.locator("main form").evaluate("form => { form.noValidate = true; }")
    for field, value in identifiers.items():
        page.locator(f"#{field}").fill(value)
    page.get_by_label("Regime").select_option("gdpr")
    if received:
        page.get_by_label("Received on").fill(received)
    page.get_by_label("Requester").fill("privacy-ops")
    page.get_by_label("Idempotency key").fill(key)
    if review:
        page.locator("#review").check()
    page.get_by_role("button", name="File the request").click()
    page.wait_for_load_state()


def _leaks(console) -> list[str]:
    """Where any typed identifier is: the state folder's files, the log of the whole session, the graph."""
    found = []
    for path in [*console["settings"].state_dir.rglob("*"), console["log"]]:
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace").lower()
            found += [f"{path.name}: {n[:4]}…" for n in NEEDLES if n in text]
    graph = console["graph"]
    dump = json.dumps(graph.read("MATCH (n) RETURN labels(n) AS l, properties(n) AS p"), default=str)
    dump += json.dumps(graph.read("MATCH ()-[r]->() RETURN type(r) AS t, properties(r) AS p"), default=str)
    found += [f"the graph: {n[:4]}…" for n in NEEDLES if n in dump.lower()]
    return found


def test_filing_keeps_the_identifiers_out_of_urls_pages_files_logs_and_the_graph(console, browser, screenshots):
    with Tab(browser, console, screenshots, Role.LEGAL) as tab:
        tab.open("/console/legal/file", "legal-file")
        for field in ("email", "phone", "account", "name"):
            assert tab.page.locator(f"#{field}").get_attribute("autocomplete") == "off"
        sent = []
        tab.page.on("request", lambda r: sent.append((r.method, r.url)))
        _file(tab, "leak-1", **TYPED)
        assert ("POST", console["url"] + "/console/legal/file") in sent
        assert all(n not in url.lower() for _, url in sent for n in NEEDLES)
        assert "Filed: identity and scope resolved" in tab.text()
        request_id = request_id_in(tab.page.url)
        assert all(n not in tab.page.content().lower() for n in NEEDLES)
        tab.check("legal-filed")
        _file(tab, "leak-1", **TYPED)  # the same key again: the same request
        assert request_id_in(tab.page.url) == request_id and "Already filed" in tab.text()
        _file(tab, "leak-1", email="someone.else@example.net")
        assert "idempotency key" in tab.text() and tab.page.locator("#email").input_value() == ""
    assert (console["settings"].state_dir / "requests" / request_id / "request.json").is_file()
    assert not _leaks(console), _leaks(console)


def test_a_problem_names_the_field_and_repeats_no_identifier(console, browser, screenshots):
    with Tab(browser, console, screenshots, Role.LEGAL) as tab:
        _file(tab, "bad-1", browser_checks=False, email="quill-at-example.net")
        assert tab.page.url.endswith("/console/legal/file")
        text = tab.text()
        assert "email:" in text and "quill-at-example" not in tab.page.content()
        assert tab.page.locator("#email").input_value() == ""
        assert tab.page.locator("#idempotency_key").input_value() == "bad-1"  # what is not personal stays
        tab.check("legal-file-problem")
        _file(tab, "bad-2", received="2017-01-01", email="q@example.net")
        assert "before the GDPR applied" in tab.text()
        _file(tab, "bad-3", browser_checks=False)
        assert "give at least one identifier" in tab.text()


def test_the_register_shows_status_step_deadline_and_what_is_overdue_or_due_this_week(console, browser, screenshots):
    today = datetime.now(timezone.utc).date()
    received = {"reg-late": today - timedelta(days=45), "reg-soon": today - timedelta(days=27), "reg-calm": today}
    with Tab(browser, console, screenshots, Role.LEGAL) as tab:
        ids = {}
        for key, day in received.items():
            _file(tab, key, received=day.isoformat(), email=f"{key}@example.org")
            ids[key] = request_id_in(tab.page.url)
        tab.open("/console/legal", "legal-register")
        rows = {key: tab.page.locator("tr", has=tab.page.locator(f"text={rid}")) for key, rid in ids.items()}
        assert rows["reg-late"].get_attribute("class") == "overdue" and "overdue" in rows["reg-late"].inner_text()
        assert rows["reg-soon"].get_attribute("class") == "due-soon"
        assert "due this week" in rows["reg-soon"].inner_text()
        assert rows["reg-calm"].get_attribute("class") is None
        assert "scope" in rows["reg-calm"].inner_text() and "open" in rows["reg-calm"].inner_text()
        attested = tab.page.locator("tr", has=tab.page.locator(f"text={console['attested']}"))
        assert "erased" in attested.inner_text() and "attest" in attested.inner_text()
        late, soon = (tab.page.locator("tbody tr").all_inner_texts().index(rows[k].inner_text())
                      for k in ("reg-late", "reg-soon"))
        assert late < soon  # soonest deadline first


def test_legal_reviews_a_borderline_record_with_a_reason(console, browser, screenshots):
    with Tab(browser, console, screenshots, Role.LEGAL) as tab:
        _file(tab, "review-1", review=True, email=EMAIL)
        request_id = request_id_in(tab.page.url)
        assert tab.page.locator("#status").text_content() == "awaiting review"
        scope = step_results(console["settings"].state_dir, request_id).scope
        borderline = [r.id for r in scope.records if r.decision == "excluded_borderline"]
        assert len(borderline) >= 2
        tab.check("legal-request")
        tab.page.get_by_role("button", name="Record the review").click()  # no reason: the browser holds it back
        assert tab.page.url.endswith("?filed=new") and "Review recorded" not in tab.text()
        bare = tab.post(f"/console/legal/requests/{request_id}/review", {"csrf_token": tab.csrf()})
        assert bare.status == 422 and "choose include or exclude" in bare.text() and "say why" in bare.text()
        tab.page.get_by_label(f"include {borderline[0]}").check()
        tab.page.get_by_label(f"exclude {borderline[1]}").check()
        tab.page.get_by_label("Reason").first.fill("ticket text confirmed as theirs with quill@example.net")
        tab.page.get_by_role("button", name="Record the review").click()
        assert "looks like an email address" in tab.text()  # a reason must not hold the person's identifiers
        tab.page.get_by_label(f"include {borderline[0]}").check()
        tab.page.get_by_label(f"exclude {borderline[1]}").check()
        tab.page.get_by_label("Reason").first.fill("the customer confirmed the first ticket; the second is another")
        tab.page.get_by_role("button", name="Record the review").click()
        assert "Review recorded: 1 included, 1 excluded" in tab.text()
        tab.check("legal-reviewed")
    scope = step_results(console["settings"].state_dir, request_id).scope
    decisions = {r.id: r.decision for r in scope.records}
    assert decisions[borderline[0]] == "included_reviewed" and decisions[borderline[1]] == "excluded_reviewed"
    assert scope.reviews[-1].reason.startswith("the customer confirmed")
    scoped = console["graph"].read("MATCH (:ErasureRequest {id: $id})-[:SCOPES]->(r:Record) RETURN r.id AS id",
                                   id=request_id)
    assert borderline[0] in {row["id"] for row in scoped}


def test_legal_extends_a_deadline_once_with_a_reason(console, browser, screenshots):
    with Tab(browser, console, screenshots, Role.LEGAL) as tab:
        _file(tab, "extend-1", received="2026-11-20", email="extend-1@example.org")
        assert tab.page.locator("#deadline").text_content().startswith("2026-12-20")
        tab.page.get_by_label("Reason for extending").fill("the request covers several systems")
        tab.page.get_by_role("button", name="Extend the deadline").click()
        assert "Deadline extended to 2027-02-20" in tab.text()
        assert "extended from 2026-12-20" in tab.page.locator("#deadline").text_content()
        assert tab.page.get_by_role("button", name="Extend the deadline").count() == 0
        tab.check("legal-extended")
        request_id = request_id_in(tab.page.url)
        again = tab.post(f"/console/legal/requests/{request_id}/extension",
                         {"csrf_token": tab.csrf(), "reason": "once more"})
        assert again.status == 400 and "already extended" in again.text()
