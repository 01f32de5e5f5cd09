"""Sensor: each open erasure request (not one awaiting review) becomes one run of the erasure job."""


from pathlib import Path

import dagster as dg

from assets.erasure_job import ErasureRequestConfig, run_erasure_request
from erasure.engine import STEPS, step_results
from erasure.requests import RequestState, list_requests


def erasure_run_config(request_id: str) -> dg.RunConfig:
    """The run config of the erasure job for one request (default method and escalation)."""
    return dg.RunConfig(ops={run_erasure_request.name: ErasureRequestConfig(request_id=request_id)})


def make_erasure_sensor(job, state_dir: str, minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """A sensor that requests one run of `job` per open request; the run key (request id) runs each once."""

    @dg.sensor(name="erasure_request_sensor", job=job, minimum_interval_seconds=minimum_interval_seconds)
    def erasure_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        state = Path(state_dir)
        ready = [r.id for r in list_requests(state)
                 if r.status is RequestState.OPEN and not set(STEPS) <= set(step_results(state, r.id).names)]
        # A crashed run keeps its run key: it is re-launched by hand and resumes from its last step.
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=rid, run_config=erasure_run_config(rid),
                                        tags={"lethe/request": rid}) for rid in ready],
            skip_reason=None if ready else "no open erasure request",
        )

    return erasure_request_sensor
