"""How times, numbers and days read on the report pages; the templates use these as filters."""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["days", "num", "px", "when"]


def when(moment: datetime | None) -> str:
    """A time as 'YYYY-MM-DD HH:MM UTC' ('—' when absent)."""
    return "—" if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def num(value: float | int | None, digits: int = 3) -> str:
    """A number for a table cell: ints with thousands separators, floats to `digits` significant digits."""
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:.{digits}g}"


def days(count: int) -> str:
    """'3 days left' or 'overdue by 2 days'."""
    n = abs(count)
    unit = "day" if n == 1 else "days"
    return f"overdue by {n} {unit}" if count < 0 else f"{n} {unit} left"


def px(value: float) -> str:
    """An SVG coordinate, to a tenth of a pixel."""
    return f"{value:.1f}"
