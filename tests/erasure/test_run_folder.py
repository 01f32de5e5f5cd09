"""The run folder: every step has a model, a result that does not match it is never written, and a file that
does not match it is refused on reading, naming the file and the field (never the value)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from erasure.run_folder import STEPS, RunFolderError, RunSteps, StepFormatError, save_step, step_results, steps_dir
from erasure.run_folder.results import RESULT_MODELS, ScopeResult

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
RID = "er-" + "a" * 24
SCOPE = {"records": [{"id": "t-1", "content_sha256": "1" * 64, "reasons": ["owned"], "decision": "included"},
                     {"id": "t-2", "content_sha256": "2" * 64, "reasons": ["near_duplicate"], "similarity": 0.91,
                      "decision": "excluded_borderline"}], "subject_keys_found": 1}


def test_every_step_has_a_model_of_its_result():
    assert set(RESULT_MODELS) == set(STEPS)


def test_a_step_written_is_read_back_through_its_model(tmp_path: Path):
    save_step(tmp_path, RID, "scope", NOW, SCOPE)
    steps = step_results(tmp_path, RID)
    assert steps.names == ("scope",) and "scope" in steps and "remedy" not in steps
    assert isinstance(steps.scope, ScopeResult) and steps.scope.included_ids() == ["t-1"]
    assert steps.scope.included_hashes() == {"t-1": "1" * 64}
    assert steps.file("scope").started_at == NOW and steps.result_document("scope") == SCOPE


def test_a_result_that_does_not_match_its_model_is_never_written(tmp_path: Path):
    wrong = {**SCOPE, "records": [{**SCOPE["records"][0], "decision": "maybe"}]}
    with pytest.raises(StepFormatError, match=r"scope result of er-a+ does not match its model: records\.0\.decision"):
        save_step(tmp_path, RID, "scope", NOW, wrong)
    with pytest.raises(StepFormatError, match="unexpected_field"):
        save_step(tmp_path, RID, "scope", NOW, {**SCOPE, "unexpected_field": 1})
    assert not (steps_dir(tmp_path, RID) / "scope.json").exists()


def test_a_malformed_step_file_is_refused_naming_the_file_and_the_field(tmp_path: Path):
    save_step(tmp_path, RID, "scope", NOW, SCOPE)
    path = steps_dir(tmp_path, RID) / "scope.json"
    document = json.loads(path.read_text())
    document["result"]["records"][0]["id"] = {"email": "sam@example.com"}
    path.write_text(json.dumps(document))
    with pytest.raises(RunFolderError) as caught:
        RunSteps.read(tmp_path, RID).scope
    assert str(path) in str(caught.value) and "records.0.id" in str(caught.value)
    assert "sam@example.com" not in str(caught.value)


def test_a_step_not_run_yet_is_named(tmp_path: Path):
    with pytest.raises(RunFolderError, match="the remedy step has not run yet"):
        RunSteps.read(tmp_path, RID).remedy
