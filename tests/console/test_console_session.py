"""Signing in and out, the role on every page, each role refused the others' pages, CSRF, keyboard and print —
in Debian's Chromium against the real app served by uvicorn."""

from __future__ import annotations

from lethe.api import Role
from tests.console.browsing import Tab

# Each role's pages (GET), as the API admits them: legal files and follows, auditors read evidence, engineers
# ask about impact. The request id and dataset are filled in per test.
PAGES = {
    Role.LEGAL: ["/console/legal", "/console/legal/file", "/console/legal/requests/{request}"],
    Role.AUDITOR: ["/console/auditor", "/console/auditor/requests/{request}", "/console/auditor/requests/{request}/report.html",
                   "/console/auditor/requests/{request}/attestation.bundle.json", "/console/auditor/keys.json",
                   "/console/auditor/verify", "/console/auditor/log"],
    Role.ENGINEER: ["/console/engineer", "/console/engineer/datasets/{dataset}/preflight"],
}
# Each role's forms (POST), refused to the others before their body is read.
FORMS = {Role.LEGAL: ["/console/legal/file", "/console/legal/requests/{request}/extension",
                      "/console/legal/requests/{request}/review"],
         Role.AUDITOR: ["/console/auditor/verify", "/console/auditor/log"],
         Role.ENGINEER: ["/console/engineer/blast-radius"]}


def _pages(console, role: Role) -> list[str]:
    return [p.format(request=console["attested"], dataset=console["dataset"]) for p in PAGES[role]]


def test_each_role_signs_in_to_its_own_pages_with_its_role_on_each(console, browser, screenshots):
    for role in Role:
        with Tab(browser, console, screenshots) as tab:
            tab.open("/console/legal")  # not signed in: the sign-in page
            assert tab.page.url.endswith("/console/sign-in")
            tab.check("sign-in")
            tab.role = role
            tab.sign_in(console["tokens"][role])
            assert tab.page.url.endswith(f"/console/{role.value}")
            assert tab.page.locator("#role").text_content() == role.value
            for link in tab.page.get_by_role("navigation").get_by_role("link").all():
                assert link.get_attribute("href").startswith(f"/console/{role.value}")
            tab.check(f"{role.value}-home")
            tab.page.get_by_role("button", name="Sign out").click()
            assert "You are signed out" in tab.text()
            tab.role = None
            tab.check("signed-out")
            tab.open(f"/console/{role.value}")
            assert tab.page.url.endswith("/console/sign-in")


def test_the_session_cookie_is_http_only_strict_and_holds_no_token(console, browser, screenshots):
    with Tab(browser, console, screenshots, Role.AUDITOR) as tab:
        cookies = {c["name"]: c for c in tab.context.cookies()}
        session = cookies["lethe_console"]
        assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/console"
        assert session["value"] != console["tokens"][Role.AUDITOR]
        assert not session["secure"]  # plain HTTP here; served over TLS it is Secure (see test_console_parts)
        assert "lethe_console_sign_in" not in cookies  # the sign-in form's CSRF cookie is gone once used


def test_a_token_that_is_not_valid_is_refused_on_the_sign_in_page(console, browser, screenshots):
    with Tab(browser, console, screenshots) as tab:
        tab.sign_in("not-a-token")
        assert "that token is not valid" in tab.text()
        tab.check("sign-in-refused")
        assert not [c for c in tab.context.cookies() if c["name"] == "lethe_console"]


def test_each_role_is_refused_the_other_roles_pages_and_forms(console, browser, screenshots):
    for role in Role:
        with Tab(browser, console, screenshots, role) as tab:
            csrf = tab.csrf()
            for other in Role:
                if other is role:
                    continue
                for path in _pages(console, other):
                    response = tab.open(path)
                    assert response.status == 403, (role, path)
                    assert f"needs a token of role '{other.value}'; yours has role '{role.value}'" in tab.text()
                for path in FORMS[other]:
                    path = path.format(request=console["attested"])
                    answer = tab.post(path, {"csrf_token": csrf, "reason": "x", "email": "a@example.com"})
                    assert answer.status == 403, (role, path)
            tab.open(_pages(console, Role.LEGAL if role is not Role.LEGAL else Role.AUDITOR)[0],
                     f"{role.value}-refused")
    with Tab(browser, console, screenshots) as anonymous:
        for role in Role:
            for path in _pages(console, role):
                anonymous.open(path)
                assert anonymous.page.url.endswith("/console/sign-in"), path


def test_a_form_without_this_sessions_csrf_token_is_refused(console, browser, screenshots):
    requests = console["settings"].state_dir / "requests"
    before = sorted(p.name for p in requests.iterdir())
    form = {"email": "csrf.victim@example.com", "regime": "gdpr", "requester": "privacy-ops",
            "idempotency_key": "csrf-1"}
    with Tab(browser, console, screenshots, Role.LEGAL) as tab, Tab(browser, console, screenshots, Role.LEGAL) as other:
        for sent in ({}, {"csrf_token": "forged"}, {"csrf_token": other.csrf()}):
            answer = tab.post("/console/legal/file", {**form, **sent})
            assert answer.status == 403 and "CSRF token" in answer.text()
        assert sorted(p.name for p in requests.iterdir()) == before  # nothing was filed
        signed_out = tab.post("/console/sign-out", {})
        assert signed_out.status == 403  # not even signing out without it
    with Tab(browser, console, screenshots) as anonymous:
        anonymous.open("/console/sign-in")
        anonymous.context.clear_cookies()  # the sign-in form's own CSRF cookie is gone
        anonymous.page.get_by_label("API token").fill(console["tokens"][Role.LEGAL])
        anonymous.page.get_by_role("button", name="Sign in").click()
        assert "came from elsewhere" in anonymous.text()


def test_keyboard_alone_signs_in_and_reaches_the_filing_form(console, browser, screenshots):
    with Tab(browser, console, screenshots) as tab:
        tab.open("/console/sign-in")
        page = tab.page
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "token":
                break
        page.keyboard.type(console["tokens"][Role.LEGAL])
        page.keyboard.press("Enter")
        page.wait_for_url("**/console/legal")
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "File a request":
                break
        page.keyboard.press("Enter")
        page.wait_for_url("**/console/legal/file")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")  # the skip link
        assert page.evaluate("document.activeElement.id") == "main"


def test_printing_leaves_out_the_navigation_and_forms(console, browser, screenshots):
    with Tab(browser, console, screenshots, Role.LEGAL) as tab:
        tab.open("/console/legal")
        tab.page.emulate_media(media="print")
        assert not tab.page.get_by_role("navigation").is_visible()
        assert tab.page.locator("#role").is_visible()  # the printout says whose view it is
        tab.page.pdf(path=str(screenshots / "legal-register-print.pdf"))
