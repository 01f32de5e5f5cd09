"""A request's run folder: the step names in order, and each step's result written and read atomically.

`requests/<id>/request.json` is the filed request; `steps/<name>.json` holds one step's result with when it
ran. A step that is there is done: a rerun skips it, so a request resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from erasure.requests import request_dir, write_json_atomic
from erasure.errors import InvalidRequestError

__all__ = ["ATTESTED_STEPS", "STEPS", "save_step", "step_results", "steps_dir"]

# identity → scope (at filing) → sweep_before (the scope's last check) → blast radius → probes, remedy →
# sweep_after (nothing left holds the person's identifiers) → statistics (false alarms across the run) →
# erase the records → attest → report.
STEPS = ("identity", "scope", "sweep_before", "blast_radius", "probe_before", "remedy", "probe_after",
         "sweep_after", "statistics", "erase_records", "attest", "report")
ATTESTED_STEPS = STEPS[:-1]  # what an attestation and its report speak for
log = logging.getLogger(__name__)


def steps_dir(state_dir: Path, request_id: str) -> Path:
    return request_dir(state_dir, request_id) / "steps"


def step_results(state_dir: Path, request_id: str) -> dict[str, dict]:
    """The persisted steps of a request, by name."""
    folder = steps_dir(state_dir, request_id)
    out = {}
    for name in STEPS:
        path = folder / f"{name}.json"
        if path.is_file():
            out[name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def save_step(state_dir: Path, request_id: str, name: str, started: datetime, result: dict) -> dict:
    """Write one step's result with its times; returns the document written."""
    if name not in STEPS:
        raise InvalidRequestError(f"unknown step {name!r}; steps are {', '.join(STEPS)}")
    finished = datetime.now(timezone.utc)
    document = {"step": name, "started_at": started.isoformat(), "finished_at": finished.isoformat(),
                "seconds": (finished - started).total_seconds(), "result": result}
    write_json_atomic(steps_dir(state_dir, request_id) / f"{name}.json", document)
    log.info("request %s: step %s done in %.1f s", request_id, name, document["seconds"])
    return document
