"""`lethe erase file|run|status|list|review|extend` and `lethe report`: erasure requests from the command line."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError
from rich.table import Table

from lethe import wiring
from lethe.cli import render
from lethe.cli.errors import EXIT_BLOCKED, fail, friendly_errors
from lethe.cli.method_settings import parse_method_settings
from lineage.limits import loads_json_bounded, read_bounded, read_file_bounded

if TYPE_CHECKING:  # the CLI imports the erasure domain only when a command needs it
    from erasure.run_folder.results import ScopeResult

erase_app = typer.Typer(help="File, run and follow erasure requests (GDPR Art. 17, CCPA).", no_args_is_help=True)
console = render.console



def _intake(source: Path | None, email, phone, account, name, regime, received_at, requester, idempotency_key):
    from erasure.requests import ErasureIntake

    document: dict = {}
    flags = [name for name, value in (("--email", email), ("--phone", phone), ("--account", account),
             ("--name", name), ("--regime", regime), ("--received-at", received_at), ("--requester", requester),
             ("--idempotency-key", idempotency_key)) if value is not None]
    if source is not None:
        if flags:
            fail(f"give the request either in {source} or as options, not both (also given: {', '.join(flags)}); "
                 "a file and options that disagree would file something nobody wrote")
        document = _read_request_document(source)
        if not isinstance(document, dict):
            fail(f"{source} must hold one JSON object with identifiers, regime, received_at, requester and "
                 "idempotency_key")
    identifiers = dict(document.get("identifiers") or {})
    identifiers.update({k: v for k, v in (("email", email), ("phone", phone), ("account", account),
                                           ("name", name)) if v})
    document["identifiers"] = identifiers
    for key, value in (("regime", regime), ("received_at", received_at), ("requester", requester),
                       ("idempotency_key", idempotency_key)):
        if value is not None:
            document[key] = value
    document.setdefault("received_at", datetime.now(timezone.utc).isoformat())
    try:
        return ErasureIntake.model_validate(document)
    except ValidationError as exc:
        # Locations and messages only: the input values may be the subject's identifiers.
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        fail(f"the request is not valid: {problems}")


def _read_request_document(source: Path):
    """The request file's JSON (or stdin's for '-'), within Lethe's size and nesting limits."""
    what = "the request on stdin" if str(source) == "-" else str(source)
    data = read_bounded(sys.stdin.buffer, what) if str(source) == "-" else read_file_bounded(source)
    try:
        return loads_json_bounded(data.decode("utf-8"), what)
    except UnicodeDecodeError as exc:
        fail(f"{what} is not UTF-8 (byte {exc.start}); save it as UTF-8 JSON")
    except json.JSONDecodeError as exc:
        fail(f"{what} is not JSON ({exc.msg} at line {exc.lineno}); see `lethe erase file --help`")


@erase_app.command("file")
@friendly_errors
def file_(
    source: Path | None = typer.Argument(None, help="JSON file with the request ('-' for stdin): identifiers "
                                                    "{email, phone, account, name}, regime, received_at, "
                                                    "requester, idempotency_key"),
    email: str | None = typer.Option(None, help="the subject's email (prefer the file: shells keep history)"),
    phone: str | None = typer.Option(None), account: str | None = typer.Option(None),
    name: str | None = typer.Option(None),
    regime: str | None = typer.Option(None, help="gdpr (one month) or ccpa (45 days)"),
    received_at: str | None = typer.Option(None, help="ISO time with zone; default now"),
    requester: str | None = typer.Option(None, help="who files it (team or case handle)"),
    idempotency_key: str | None = typer.Option(None, help="the same key files the same request once"),
    review: bool = typer.Option(False, help="let a person confirm the identity found and the borderline records "
                                            "before it runs"),
    expand: bool = typer.Option(True, help="follow the other identifiers the subject's records link to them "
                                           "(--no-expand: only the identifiers given)"),
    hops: int = typer.Option(1, min=0, max=3, help="how far to follow linked identifiers"),
) -> None:
    """File an erasure request and resolve its identity and scope (identifiers are keyed at once, never stored)."""
    from erasure.engine import file_and_scope, step_results

    intake = _intake(source, email, phone, account, name, regime, received_at, requester, idempotency_key)
    settings = wiring.cli_settings()
    with wiring.open_graph(settings) as graph, console.status("filing, resolving the identity and the scope…"):
        request, new = file_and_scope(wiring.erasure_context(settings, graph), intake, review=review, expand=expand,
                                      hops=hops)
    steps = step_results(settings.state_dir, request.id)
    console.print(f"{'filed' if new else 'already filed'}: request [bold]{request.id}[/] ({request.regime.value}, "
                  f"due {request.due_at:%Y-%m-%d}), status {request.status.value}")
    if "identity" in steps:
        render.identity_table(steps.identity)
    _scope_table(steps.scope)
    if request.status.value == "awaiting_review":
        console.print(f"next: lethe erase review {request.id} [--include ID] [--exclude ID] [--drop-identifier KIND]")
    else:
        console.print(f"next: lethe erase run {request.id}")


def _scope_table(scope: ScopeResult) -> None:
    table = Table(title="Scope", title_justify="left")
    for column in ("record", "reasons", "found", "similarity", "confirmed by", "decision"):
        table.add_column(column)
    for r in scope.records:
        spans = ", ".join(f"{n} {kind}" for kind, n in r.shared_spans.items())
        confirmed = " ".join(filter(None, [r.confirmation, spans and f"({spans})"]))
        table.add_row(r.id, ", ".join(r.reasons), ", ".join(r.identifiers),
                      "" if r.similarity is None else f"{r.similarity:.3f}", confirmed, r.decision)
    console.print(table)
    for note in scope.notes:
        console.print(f"note: {note}")


@erase_app.command("review")
@friendly_errors
def review(
    request_id: str = typer.Argument(...),
    include: list[str] = typer.Option([], help="a borderline record to erase too (repeatable)"),
    exclude: list[str] = typer.Option([], help="a record the subject does not own to leave alone (repeatable)"),
    drop_identifier: list[str] = typer.Option([], help="a followed identifier that is not the subject's, by kind "
                                                       "or key prefix (repeatable)"),
    reason: str | None = typer.Option(None, help="why (kept with the scope; no identifiers of the person)"),
) -> None:
    """Decide on a request's scope: borderline records, records others own, identifiers found; runs once decided."""
    from erasure.engine import review_scope

    settings = wiring.cli_settings()
    with wiring.open_graph(settings) as graph:
        result = review_scope(wiring.erasure_context(settings, graph), request_id, include, exclude,
                              drop_identifier, reason=reason)
    console.print(f"included {len(result['included'])}, excluded {len(result['excluded'])}, dropped "
                  f"{result['dropped_identifiers']} identifier(s); {len(result['still_borderline'])} borderline left")


@erase_app.command("run")
@friendly_errors
def run(
    request_ids: list[str] = typer.Argument(None, help="request ids (default: every open request)"),
    method: str = typer.Option("retrain", help="retrain (exact), gradient_ascent, grad_diff or npo"),
    set_: list[str] = typer.Option([], "--set", help="a method setting, KEY=VALUE (repeatable)"),
    escalate: bool = typer.Option(True, help="retrain when an approximate method leaves records flagged"),
    window_hours: float = typer.Option(24.0, min=0.0, help="requests received this close share one remedy"),
    relearn: bool = typer.Option(True, help="after each remedy attempt, fine-tune briefly on retained records and "
                                            "probe again: forgetting that only hid the records comes back"),
    relearn_off_reason: str | None = typer.Option(None, help="why the relearning check is off (--no-relearn "
                                                              "needs it; recorded with the remedy)"),
    generation_budget: int | None = typer.Option(None, min=32, help="new tokens the extraction test generates "
                                                 "per person and model (default 1,024; recorded): more finds "
                                                 "rarer leaks and takes longer"),
) -> None:
    """Run (or resume) requests: blast radius, probes, remedy, probes, erase, attest, report."""
    from erasure.engine import EngineOptions, run_requests
    from unlearning.methods.registry import parse_config

    config = parse_method_settings(set_)
    parse_config(method, config)  # an unknown method or a bad setting fails before any work
    settings = wiring.cli_settings()
    options = EngineOptions(method=method, config=config, escalate=escalate,
                            coalesce_window=timedelta(hours=window_hours), relearn=relearn,
                            relearn_off_reason=relearn_off_reason,
                            **({"generation_budget": generation_budget} if generation_budget is not None else {}))
    with wiring.open_graph(settings) as graph, console.status("running…") as status:
        outcomes = run_requests(wiring.erasure_context(settings, graph), request_ids or None, options,
                                on_event=lambda rid, what: status.update(f"{rid}: {what}…"),
                                on_step=lambda step, total, loss: status.update(f"training step {step}/{total}"))
    if not outcomes:
        console.print("no open request to run")
    for outcome in outcomes:
        verdict = outcome.verdict or {}
        console.print(f"[bold]{outcome.request_id}[/]: {outcome.status}, verdict {verdict.get('status', '–')}"
                      + (f" ({'; '.join(verdict['reasons'])})" if verdict.get("reasons") else ""))
        if outcome.bundle:
            console.print(f"  attestation: {outcome.bundle}\n  report: {outcome.report}")
    if any(o.verdict and o.verdict["status"] != "erased" for o in outcomes):
        raise typer.Exit(EXIT_BLOCKED)


@erase_app.command("status")
@friendly_errors
def status(request_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """Where a request stands: deadline, steps done, scope, verdict."""
    from erasure.engine import STEPS, step_results
    from erasure.requests import load_request

    settings = wiring.cli_settings()
    request = load_request(settings.state_dir, request_id)
    steps = step_results(settings.state_dir, request_id)
    if as_json:
        verdict = steps.attest.verdict.model_dump() if "attest" in steps else None
        print(json.dumps({"request": request.model_dump(mode="json"), "steps": sorted(steps.names),
                          "verdict": verdict}))
        return
    left = (request.deadline - datetime.now(timezone.utc)).total_seconds() / 86400
    console.print(f"[bold]{request.id}[/] {request.regime.value}, received {request.received_at:%Y-%m-%d}, "
                  f"due {request.deadline:%Y-%m-%d} ({left:.0f} days {'left' if left >= 0 else 'overdue'}), "
                  f"status {request.status.value}")
    console.print("steps: " + " → ".join(f"[green]{s}[/]" if s in steps else f"[dim]{s}[/]" for s in STEPS))
    if "identity" in steps:
        render.identity_table(steps.identity)
    if "scope" in steps:
        _scope_table(steps.scope)
    for name in ("sweep_before", "sweep_after"):
        if name in steps:
            render.sweep_line(name, steps.result(name))
    if "statistics" in steps:
        render.statistics_line(steps.statistics)
    if "attest" in steps:
        result = steps.attest
        console.print(f"verdict: [bold]{result.verdict.status}[/]; attestation log index {result.log_index}")


@erase_app.command("list")
@friendly_errors
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """The register: every request with its status and deadline."""
    from erasure.reporting import register

    rows = register(wiring.cli_settings().state_dir)
    if as_json:
        print(json.dumps([row.model_dump(mode="json") for row in rows]))
        return
    table = Table(title="Erasure requests", title_justify="left")
    table.add_column("request", no_wrap=True)
    for column in ("regime", "status", "received", "deadline", "days left", "verdict"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.id, row.regime, row.status, f"{row.received_at:%Y-%m-%d}", f"{row.deadline:%Y-%m-%d}",
                      str(row.days_left), row.verdict or "–")
    console.print(table)


@erase_app.command("extend")
@friendly_errors
def extend(request_id: str = typer.Argument(...), reason: str = typer.Option(..., help="why (told to the subject)")) -> None:
    """Extend a request's deadline once, by the regime's extension."""
    from erasure.requests import extend_request

    settings = wiring.cli_settings()
    with wiring.open_graph(settings) as graph:
        request = extend_request(settings.state_dir, graph, request_id, reason)
    console.print(f"{request.id}: deadline extended to {request.extended_due_at:%Y-%m-%d}")


@friendly_errors
def report(request_id: str = typer.Argument(..., help="the request to report on")) -> None:
    """Write a request's auditor report (HTML and JSON) and the register; print where they are."""
    from erasure.reporting import build_report, write_register

    settings = wiring.cli_settings()
    paths = build_report(settings.state_dir, request_id)
    register_path = write_register(settings.state_dir)
    console.print(f"report: {paths.html}\njson: {paths.json}\nregister: {register_path}")

