"""The console's pages from Jinja2 templates (autoescape on), with headers that let them load only themselves."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from erasure.report_formatting import days, when

# Pages load their stylesheet from the console itself and nothing else; forms post back to it; the only frame
# is the report's, from the console too; and no one may frame the console.
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")
# The report as the engine wrote it (its CSS is inline): framed by the console page, sandboxed, no script.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
              "frame-ancestors 'self'; base-uri 'none'; sandbox")


# Each role's pages, in the header of every page.
NAV = {"legal": [("/console/legal", "Register"), ("/console/legal/file", "File a request")],
       "auditor": [("/console/auditor", "Reports"), ("/console/auditor/verify", "Verify a bundle"),
                   ("/console/auditor/log", "Transparency log"), ("/console/auditor/keys.json", "Key registry (download)")],
       "engineer": [("/console/engineer", "Blast radius and preflight")]}


def _finalize(value: object) -> object:
    """An absent optional value prints as nothing rather than 'None'."""
    return "" if value is None else value


@cache
def environment() -> Environment:
    """The console's templates, from the package (they ship in the wheel)."""
    env = Environment(loader=PackageLoader("lethe.console", "templates"), autoescape=True,
                      undefined=StrictUndefined, finalize=_finalize, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, days=days)
    env.globals.update(NAV=NAV)
    return env


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page: the template with the signed-in caller (if any), their CSRF token and the navigation."""
    signed_in = getattr(request.state, "console", None)
    html = environment().get_template(template).render(signed_in=signed_in, **context)
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": PAGE_CSP})


def error_page(request: Request, status: int, message: str, title: str | None = None) -> HTMLResponse:
    """An error as a page: what went wrong and what to do, never a traceback or the input that caused it."""
    titles = {401: "Sign in first", 403: "Not for your role", 404: "Not found", 413: "Too large",
              422: "Check the form", 503: "Unavailable"}
    return render(request, "error.html.j2", status=status, title=title or titles.get(status, "Something went wrong"),
                  message=message)
