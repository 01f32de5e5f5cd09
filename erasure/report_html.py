"""HTML of the erasure report and the register: one self-contained page each, inline CSS and SVG, no script.

The pages are Jinja2 templates in `erasure/templates/`, rendered with autoescape on: every value from the
report is escaped, in HTML text, attributes and SVG alike. What the templates show beyond the report
model's own fields is derived in `report_view` and `report_charts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from erasure.report_formatting import days, num, px, when
from erasure.report_model import ErasureReport, RegisterRow
from erasure.report_view import near_duplicate_of, report_view, shown_ids

__all__ = ["render_register", "render_report"]


def _finalize(value: object) -> object:
    """An absent optional value prints as nothing rather than 'None'."""
    return "" if value is None else value


@cache
def environment() -> Environment:
    """The templates, loaded from the package (they ship in the wheel), with the report's filters."""
    env = Environment(loader=PackageLoader("erasure", "templates"), autoescape=True, undefined=StrictUndefined,
                      finalize=_finalize, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(when=when, num=num, days=days, px=px, near_duplicate_of=near_duplicate_of,
                       shown_ids=shown_ids)
    return env


def render_report(report: ErasureReport) -> str:
    """The report page."""
    return environment().get_template("report.html.j2").render(report=report, view=report_view(report))


def render_register(rows: Sequence[RegisterRow], generated_at: datetime) -> str:
    """The register page: every request by deadline, overdue ones highlighted."""
    return environment().get_template("register.html.j2").render(rows=rows, generated_at=generated_at)
