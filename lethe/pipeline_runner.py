"""Runs Lethe's Dagster pipeline in a real Dagster instance (under DAGSTER_HOME) through its CLI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from erasure.errors import ErasureError
from lethe.settings import Settings
from lineage.local_files import PRIVATE_UMASK, private_dir

CODE_LOCATION = "assets.definitions"
RECORD_BATCHES = "record_batches"  # the dynamic partitions of raw_records / pii_scan
INGEST_ASSETS = "raw_records,pii_scan"
TRAIN_ASSETS = "shards,dataset_version,fine_tune,deployment"


class PipelineError(ErasureError):
    """A Dagster run failed; the message points at its output."""


def _instance(settings: Settings):
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    home = private_dir(settings.dagster_home)
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def register_batches(settings: Settings, names: list[str]) -> None:
    """Add batch files as partitions (what the record_batch_sensor does under the daemon)."""
    with _instance(settings) as instance:
        known = set(instance.get_dynamic_partitions(RECORD_BATCHES))
        new = [n for n in names if n not in known]
        if new:
            instance.add_dynamic_partitions(RECORD_BATCHES, new)


def materialize(settings: Settings, selection: str, partition: str | None = None, log: Path | None = None,
                run_config: dict | None = None) -> None:
    """`dagster asset materialize` for a selection (and partition, run config); raises PipelineError on failure."""
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    cmd = [dagster, "asset", "materialize", "-m", CODE_LOCATION, "--select", selection]
    if partition:
        cmd += ["--partition", partition]
    if run_config:
        cmd += ["--config-json", json.dumps(run_config)]
    log = log or settings.state_dir / "logs" / "dagster.log"
    private_dir(log.parent)
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as out:
        proc = subprocess.run(cmd, env=settings.child_environment(), stdout=out, stderr=subprocess.STDOUT,
                              cwd=Path(__file__).resolve().parents[1], umask=PRIVATE_UMASK)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise PipelineError(f"materializing {selection}{f' [{partition}]' if partition else ''} failed "
                            f"(exit {proc.returncode}); the run's output is in {log}:\n{tail}")


def batch_files(settings: Settings) -> list[str]:
    """The batch files in the batches folder, by name (what the record_batch_sensor picks up)."""
    from assets.sensors import BATCH_SUFFIXES

    folder = settings.record_batches_dir
    return sorted(p.name for p in folder.iterdir() if p.suffix in BATCH_SUFFIXES) if folder.is_dir() else []


def ingested_batches(settings: Settings) -> set[str]:
    """The batch partitions whose records were materialized already."""
    from dagster import AssetKey

    with _instance(settings) as instance:
        return set(instance.get_materialized_partitions(AssetKey("raw_records")))


def run_pipeline(settings: Settings, names: list[str], run_config: dict | None = None,
                 stage: Callable[[str], AbstractContextManager] = lambda _: contextlib.nullcontext(),
                 train_unchanged: bool = True) -> tuple[list[str], bool]:
    """Ingest the batches not ingested yet (records, PII scan: one run per batch), then train (shards, dataset
    version, an adapter per shard, deployment) — when a batch was new, or `train_unchanged`. Returns the
    batches ingested now and whether it trained. `stage(what)` wraps each Dagster run."""
    register_batches(settings, names)
    new = [name for name in names if name not in ingested_batches(settings)]
    for name in new:
        with stage(f"Dagster: raw_records + pii_scan [{name}]…"):
            materialize(settings, INGEST_ASSETS, partition=name)
    if not (new or train_unchanged):
        return new, False
    with stage("Dagster: shards → dataset_version → fine_tune (LoRA per shard) → deployment…"):
        materialize(settings, TRAIN_ASSETS, run_config=run_config)
    return new, True
