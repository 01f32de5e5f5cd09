"""`lethe.toml`: a team's mapping of their records, and their dataset, training and deployment settings.

    [records]            # lineage.mapping.RecordMapping: which column holds what
    [dataset]            # shards, holdout_fraction, name, shard_by
    [training]           # r, alpha, learning_rate, epochs, batch_size, max_length, seed, engine, loss_on
    [deployment]         # deployment_id, endpoint, form

Every table is optional; `lethe pipeline run`'s options override the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lethe.errors import InvalidArgumentError
from lineage.mapping import RecordMapping

__all__ = ["DEFAULT_PROJECT_FILE", "ProjectConfig", "load_project"]

DEFAULT_PROJECT_FILE = "lethe.toml"


class DatasetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    shard_count: int | None = Field(None, ge=1, le=4096, alias="shards")
    holdout_fraction: float | None = Field(None, ge=0.0, le=0.5)
    shard_by: str | None = Field(None, pattern="^(subject|record)$")


class TrainingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int | None = Field(None, ge=1, le=1024)
    alpha: float | None = Field(None, gt=0)
    learning_rate: float | None = Field(None, gt=0, lt=1)
    epochs: int | None = Field(None, ge=1, le=1000)
    batch_size: int | None = Field(None, ge=1, le=4096)
    max_length: int | None = Field(None, ge=8, le=131072)
    seed: int | None = Field(None, ge=0)
    target_modules: list[str] | None = Field(None, min_length=1)
    engine: str | None = Field(None, pattern="^(trainer|loop)$")
    loss_on: str | None = Field(None, pattern="^(all|assistant)$")


class DeploymentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deployment_id: str | None = Field(None, min_length=1, max_length=200)
    endpoint: str | None = Field(None, min_length=1, max_length=2000)
    form: str | None = None


class ProjectConfig(BaseModel):
    """The whole file; `source` is where it was read from (None: no file, every default)."""

    model_config = ConfigDict(extra="forbid")
    records: RecordMapping = Field(default_factory=RecordMapping)
    dataset: DatasetSettings = Field(default_factory=DatasetSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings)
    source: Path | None = None

    def run_config(self) -> dict[str, Any] | None:
        """The Dagster run config of the training assets these settings give (None: every default)."""
        ops = {}
        for op, settings in (("shards", self.dataset), ("fine_tune", self.training),
                             ("deployment", self.deployment)):
            values = settings.model_dump(exclude_none=True)
            if values:
                ops[op] = {"config": values}
        return {"ops": ops} if ops else None


def _where(error: dict) -> str:
    return ".".join(str(p) for p in error.get("loc") or ()) or "the file"


def load_project(path: Path | None) -> ProjectConfig:
    """Read `path` (or ./lethe.toml when it exists; else the defaults); InvalidArgumentError names the key to fix."""
    if path is None:
        path = Path(DEFAULT_PROJECT_FILE)
        if not path.is_file():
            return ProjectConfig()
    if not path.is_file():
        raise InvalidArgumentError(f"{path}: no such file; give the project file (TOML, see docs/your-data.md)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"{path}: not valid TOML ({exc})") from None
    try:
        return ProjectConfig.model_validate({**data, "source": path})
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise InvalidArgumentError(f"{path}: {_where(first)}: {first['msg']}") from None
