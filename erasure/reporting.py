"""The auditor's report of one erasure request, and the register of every request: reading, checking, writing.

A report is built only from what the request's run folder holds (`request.json`, `steps/*.json`, the
attestation bundle): ids, hashes, times and figures. Before anything is written, every input file and the
report itself are scanned for text that looks like an email address or phone number; a hit refuses the
report, naming the file and the JSON path (never the text). The HTML is rendered from the checked report alone.

Where things live: `report_inputs` reads the run folder, `report_builder` turns it into the `report_model`,
`report_html` renders the model through the Jinja2 templates in `erasure/templates/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from erasure.report_builder import as_of, days_left, make_report, oriented_score
from erasure.report_html import render_register, render_report
from erasure.report_inputs import STEPS, ReportError, guard, load_report_inputs, read_attest_step
from erasure.report_model import REGISTER_FORMAT, ErasureReport, RegisterRow
from erasure.requests import FiledRequest, list_requests, request_dir, write_json_atomic
from lineage.local_files import write_private_text

__all__ = ["STEPS", "ErasureReport", "RegisterRow", "ReportError", "ReportPaths", "build_report",
           "load_report_inputs", "make_report", "oriented_score", "register", "write_register"]


@dataclass(frozen=True)
class ReportPaths:
    """Where a report was written."""

    json: Path
    html: Path


def _now(now: datetime | None) -> datetime:
    """`now`, which must carry a timezone, or the current UTC time."""
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now needs a timezone, e.g. datetime.now(timezone.utc)")
    return now


def build_report(state_dir: Path, request_id: str, *, now: datetime | None = None) -> ReportPaths:
    """Write `report.json` and `report.html` into the request's run folder; refuse if they would hold personal data."""
    now = _now(now)
    inputs = load_report_inputs(state_dir, request_id)
    report = make_report(inputs, now)
    value = report.as_json()
    guard(value, f"the report of {request_id}")
    html_text = render_report(report)
    paths = ReportPaths(inputs.folder / "report.json", inputs.folder / "report.html")
    write_json_atomic(paths.json, value)
    write_private_text(paths.html, html_text)
    return paths


def _register_row(state_dir: Path, request: FiledRequest, now: datetime) -> RegisterRow:
    """A request's row, from its request file and attest step."""
    folder = request_dir(state_dir, request.id)
    attest = read_attest_step(folder)
    step, result = attest if attest else (None, None)
    moment, _ = as_of({"attest": step} if step else {}, now)
    days = days_left(request.deadline, moment)
    report = folder / "report.html"
    return RegisterRow(id=request.id, regime=request.regime.value, status=request.status.value,
                       received_at=request.received_at, deadline=request.deadline, days_left=days,
                       overdue=days < 0, verdict=result.verdict.status if result else None,
                       attested=bool(result and (folder / result.bundle).is_file()),
                       report=str(report) if report.is_file() else None)


def register(state_dir: Path, *, now: datetime | None = None) -> list[RegisterRow]:
    """Every filed request, soonest deadline first."""
    now = _now(now)
    rows = [_register_row(state_dir, r, now) for r in list_requests(state_dir)]
    return sorted(rows, key=lambda row: (row.deadline, row.id))


def write_register(state_dir: Path, *, now: datetime | None = None) -> Path:
    """Write `requests/register.json` and `register.html`; returns the JSON's path."""
    now = _now(now)
    rows = register(state_dir, now=now)
    value = {"format": REGISTER_FORMAT, "generated_at": now.isoformat(),
             "requests": [row.model_dump(mode="json") for row in rows]}
    guard(value, "the register")
    root = Path(state_dir) / "requests"
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / "register.json", value)
    write_private_text(root / "register.html", render_register(rows, now))
    return root / "register.json"
