"""Small HTML building blocks of the report pages: escaping, numbers, times and tables."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

__all__ = ["_Raw", "_days", "_e", "_missing", "_num", "_pairs", "_table", "_when"]


class _Raw(str):
    """HTML built here from escaped parts: inserted as is."""


def _e(value: object) -> str:
    """Escaped text of a value (raw HTML built here passes through)."""
    return value if isinstance(value, _Raw) else html.escape("" if value is None else str(value))


def _when(moment: datetime | None) -> str:
    """A time as 'YYYY-MM-DD HH:MM UTC'."""
    return "—" if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _num(value: float | int | None, digits: int = 3) -> str:
    """A number for a table cell ('—' when absent)."""
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:.{digits}g}"


def _days(days: int) -> str:
    """'3 days left' or 'overdue by 2 days'."""
    n = abs(days) if days < 0 else days
    unit = "day" if n == 1 else "days"
    return f"overdue by {n} {unit}" if days < 0 else f"{n} {unit} left"


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[int] = ()) -> str:
    """A table; cells are escaped unless built here, columns in `numeric` right-aligned."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    num = ' class="num"'
    body = "".join("<tr>" + "".join(f"<td{num if i in numeric else ''}>{_e(c)}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs(items: Iterable[tuple[str, object]]) -> str:
    """A two-column table of labels and values."""
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items) + "</table>"


def _missing(what: str = "not reached") -> str:
    """The mark of a step the request has not reached."""
    return f'<p class="missing">{_e(what)}</p>'
