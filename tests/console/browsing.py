"""A signed-in browser tab on the console, with the checks every page must pass."""

from __future__ import annotations

import re
from pathlib import Path

from lethe.api import Role

# Every field a person fills in has a <label> (or an aria-label): the labels are the accessible names.
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name || e.id)"""


class Tab:
    """One browser context (its own cookies) and page on the console; records every address the page loads."""

    def __init__(self, browser, console: dict, shots: Path, role: Role | None = None):
        self.console, self.shots, self.role = console, shots, role
        self.context = browser.new_context(base_url=console["url"], accept_downloads=True)
        self.page = self.context.new_page()
        self.loaded: list[str] = []
        self.page.on("request", lambda request: self.loaded.append(request.url))
        if role is not None:
            self.sign_in(console["tokens"][role])

    def __enter__(self) -> Tab:
        return self

    def __exit__(self, *exc) -> None:
        self.context.close()

    def sign_in(self, token: str) -> None:
        self.page.goto("/console/sign-in")
        self.page.get_by_label("API token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()

    def open(self, path: str, shot: str | None = None):
        """Go to `path` and check the page (and save its screenshot when `shot` names it); the response."""
        response = self.page.goto(path)
        if shot:
            self.check(shot)
        return response

    def check(self, shot: str) -> None:
        """The page shows the role (when signed in), labels every field, loads only from the console, and is
        saved as `<shot>.png` in the screenshots folder."""
        page = self.page
        if self.role is not None:
            assert page.locator("#role").text_content() == self.role.value, page.url
        assert page.evaluate(UNLABELLED) == [], page.url
        foreign = [url for url in self.loaded if not url.startswith(self.console["url"])]
        assert not foreign, f"loaded from elsewhere: {foreign}"
        page.screenshot(path=str(self.shots / f"{shot}.png"), full_page=True)

    def csrf(self) -> str:
        return self.page.locator("input[name=csrf_token]").first.get_attribute("value")

    def text(self) -> str:
        return self.page.locator("main").inner_text()

    def post(self, path: str, form: dict):
        """A form sent from this tab's session outside any page (as another site's form would send it)."""
        return self.context.request.post(self.console["url"] + path, form=form, max_redirects=0)


def request_id_in(url: str) -> str:
    found = re.search(r"/requests/(er-[0-9a-f]{24})", url)
    assert found, url
    return found.group(1)
