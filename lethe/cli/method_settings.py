"""`--set KEY=VALUE` options of a remedy method, parsed as JSON values where they are JSON."""

from __future__ import annotations

import json

from lethe.cli.errors import fail

__all__ = ["parse_method_settings"]


def parse_method_settings(values: list[str]) -> dict:
    """KEY=VALUE items to a dict: `steps=20` gives 20, `lr=1e-4` gives 0.0001, anything else stays a string."""
    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--set takes KEY=VALUE, got {item!r}")
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    return parsed
