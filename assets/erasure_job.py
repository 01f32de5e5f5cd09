"""The erasure job: one filed request run (or resumed) by the engine, step by step, in a Dagster run."""


import dagster as dg
from pydantic import Field

from assets.resources import Neo4jResource
from erasure.engine import EngineOptions, RequestOutcome, run_requests, step_results
from erasure.errors import ErasureError
from erasure.requests import load_request, request_dir
from lethe.settings import Settings
from lethe.wiring import erasure_context
from lineage.errors import LineageError
from unlearning.errors import UnlearningError

# Runs of this op share the state folder and the served adapters: an operator can serialize them with
# `dagster instance concurrency set lethe-erasure 1` (the engine coalesces remedies only within one run).
ERASURE_POOL = "lethe-erasure"


class ErasureRequestConfig(dg.Config):
    """Which filed request to run, and how to remedy it (the options of `lethe erase run`)."""

    request_id: str = Field(description="a filed request's id (er-…); `lethe erase list` shows them")
    method: str = Field(default="retrain", description="retrain (exact), gradient_ascent, grad_diff or npo")
    escalate: bool = Field(default=True,
                           description="retrain when an approximate method leaves records flagged")


def _check_method(settings: Settings, config: ErasureRequestConfig) -> None:
    """Refuse an unknown method before any step runs, unless the request has nothing left to remedy."""
    steps = step_results(settings.state_dir, config.request_id)
    if "remedy" in steps or ("scope" in steps and not steps.scope.included_ids()):
        return  # the registry loads torch: not worth it for a request no method will touch
    from unlearning.methods.registry import parse_config

    parse_config(config.method, None)


def _progress(context: dg.OpExecutionContext):
    """Engine callbacks that log request ids, step names and step counts — never an identifier."""

    def on_event(request_id: str, what: str) -> None:
        context.log.info(f"{request_id}: {what}")

    def on_step(step: int, total: int, loss: float) -> None:
        if step == total or step % max(1, total // 10) == 0:
            context.log.info(f"training step {step}/{total}")

    return on_event, on_step


def _summary(settings: Settings, outcome: RequestOutcome) -> dict:
    """Where the request ended: status, verdict and its reasons, the steps this run did, the files."""
    steps = step_results(settings.state_dir, outcome.request_id)
    verdict = outcome.verdict or (steps.attest.verdict.model_dump() if "attest" in steps else {})
    folder = request_dir(settings.state_dir, outcome.request_id)
    files = {name: folder / filename for name, filename in (("bundle", "attestation.bundle.json"),
                                                            ("report", "report.html"))}
    return {"request_id": outcome.request_id, "status": outcome.status, "verdict": verdict.get("status"),
            "verdict_reasons": list(verdict.get("reasons", [])), "steps_run": list(outcome.steps_run),
            **{name: str(path.resolve()) if path.is_file() else None for name, path in files.items()}}


def _metadata(summary: dict) -> dict:
    metadata = {"request_id": summary["request_id"], "status": summary["status"],
                "verdict": summary["verdict"] or "none",
                "verdict_reasons": dg.MetadataValue.json(summary["verdict_reasons"]),
                "steps_run": ", ".join(summary["steps_run"]) or "none (every step was already done)"}
    metadata.update({name: dg.MetadataValue.path(summary[name])
                     for name in ("bundle", "report") if summary[name]})
    return metadata


@dg.op(pool=ERASURE_POOL)
def run_erasure_request(context: dg.OpExecutionContext, config: ErasureRequestConfig,
                        neo4j: Neo4jResource) -> dg.Output[dict]:
    """Run or resume one request: blast radius → probes → remedy → probes → erase → attest → report."""
    # The run process loads the code location from the same environment, so Settings() here sees the
    # state folder, pepper and base model that the definitions (and the sensor) were built with.
    settings = Settings()
    on_event, on_step = _progress(context)
    try:
        load_request(settings.state_dir, config.request_id)
        _check_method(settings, config)
        options = EngineOptions(method=config.method, escalate=config.escalate)
        outcome = run_requests(erasure_context(settings, neo4j.graph), [config.request_id], options,
                               on_event=on_event, on_step=on_step)[0]
    except (ErasureError, LineageError, UnlearningError) as exc:
        raise dg.Failure(f"erasure request {config.request_id} failed: {exc}") from exc
    summary = _summary(settings, outcome)
    context.log.info(f"{outcome.request_id}: {outcome.status}, verdict {summary['verdict'] or 'none'}")
    return dg.Output(summary, metadata=_metadata(summary))


@dg.job(tags={"lethe/flow": "erasure"})
def erasure_job() -> None:
    """Run (or resume) one filed erasure request; launched by erasure_request_sensor or by hand."""
    run_erasure_request()
