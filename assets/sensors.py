"""Sensors: new batch files in the batches folder become partitions and runs."""


from pathlib import Path

import dagster as dg

from assets.records import record_batches

BATCH_SUFFIXES = {".jsonl", ".parquet"}  # `lethe pipeline run FILE` turns .csv (and any mapping) into .jsonl


def make_batch_sensor(job, batches_dir: str,
                      minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """A sensor that adds a partition per new batch file and requests a run of `job` for it."""

    @dg.sensor(name="record_batch_sensor", job=job, minimum_interval_seconds=minimum_interval_seconds)
    def record_batch_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        folder = Path(batches_dir)
        files = sorted(p.name for p in folder.iterdir() if p.suffix in BATCH_SUFFIXES) if folder.is_dir() else []
        known = set(context.instance.get_dynamic_partitions(record_batches.name))
        new = [name for name in files if name not in known]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(partition_key=name, run_key=name) for name in new],
            dynamic_partitions_requests=[record_batches.build_add_request(new)] if new else [],
        )

    return record_batch_sensor
