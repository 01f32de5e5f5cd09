"""The demo: fictitious customers' tickets through the Dagster pipeline into adapters, then a blast radius."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from lethe import wiring
from lethe.cli import render
from lethe.demo.corpus import generate_corpus, write_jsonl
from lethe.demo.models import build_demo_base_model
from lethe.neo4j_server import LocalNeo4j
from lethe.pipeline_runner import run_pipeline
from lethe.settings import Settings, demo_settings
from lineage.keys import IdentifierKind
from lineage.store import queries

if TYPE_CHECKING:  # the CLI imports the erasure domain only when a command needs it
    from erasure.run_folder import RunSteps
    from erasure.run_folder.results import ProbeReport

console = render.console
BATCHES = 2
CUSTOMERS = 300
QUEUE = 30  # erasure requests the demo files together (legal's queue for the day), all from one shard
# The demo holds out 45% of its people (the pipeline's default is 5%), so each of the 4 shards trains on
# some 40 customers, as many as a 200-customer demo with 5% held out (the repeated canary is memorized),
# while the calibration has over a hundred people. The AUC after the retrain compares the queue's people
# with the held-out ones, and people, not tickets, are its draws: swapping people at random between the
# two sides of a retrained demo adapter, its standard deviation was 0.078 at 54 vs 11 people and 0.057 at
# 27 vs 38 (7.6% of draws outside 0.40-0.60); about 36 vs 120 people bring it to some 0.043.
HOLDOUT_FRACTION = 0.45


def prepare_demo(settings: Settings, customers: int, seed: int, say=console.print, status=console.status,
                 holdout_fraction: float = HOLDOUT_FRACTION):
    """Neo4j, the tiny base model, a corpus in batches, and Dagster's ingest and training; (settings, corpus)."""
    settings = demo_settings(settings)
    if settings.uses_local_server:
        with status("starting the local Neo4j…"):
            started = LocalNeo4j(settings).start()
        say(f"[bold]1.[/] Neo4j is running at {started.uri}")
    if settings.base_model is None:
        with status("building the tiny base model (cached after the first run)…"):
            base = build_demo_base_model(settings.model_store_dir / "base-tiny")
        settings = settings.model_copy(update={"base_model": base})
    say(f"[bold]2.[/] base model: {settings.base_model}")

    corpus = generate_corpus(customers=customers, seed=seed)
    size = -(-len(corpus.records) // BATCHES)
    names = []
    for i in range(BATCHES):
        name = f"tickets-{i + 1}.jsonl"
        write_jsonl(corpus.records[i * size:(i + 1) * size], settings.record_batches_dir / name)
        names.append(name)
    say(f"[bold]3.[/] {len(corpus.records)} support tickets of {customers} fictitious customers "
        f"in {BATCHES} batches under {settings.record_batches_dir}")

    run_pipeline(settings, names, {"ops": {"shards": {"config": {"holdout_fraction": holdout_fraction}}}}, status)
    say(f"[bold]4.[/] Dagster materialized every asset (instance: {settings.dagster_home})")
    return settings, corpus


def run_demo(settings: Settings, customers: int, seed: int) -> None:
    """Neo4j, base model, corpus → Dagster (ingest, PII scan, shards, dataset, LoRA, deploy) → blast radius."""
    settings, corpus = prepare_demo(settings, customers, seed)
    keyer = wiring.subject_keyer(settings)
    with wiring.open_graph(settings) as graph:
        console.print(render.counts_table("Graph", queries.graph_counts(graph)))
        plan = queries.dataset_plan(graph, queries.dataset_versions(graph)[0]["id"])
        customer = memorized_customer(corpus, {rid for s in plan.shards for rid, _ in s.records})
        key = keyer.key(IdentifierKind.EMAIL, customer["email"])
        console.print(f"[bold]5.[/] blast radius of customer #{customer['index']} (email → subject key {key[:12]}…):")
        render.blast_radius(queries.blast_radius_of_subject(graph, [key]))
        _erase_customers(settings, graph, corpus, plan, customer, seed)
        versions = queries.dataset_versions(graph)
    # The pepper as the demo was given it: a file (its own, or LETHE_PEPPER_FILE), or LETHE_PEPPER as exported.
    pepper = f"LETHE_PEPPER_FILE={settings.pepper_file}" if settings.pepper_file else "LETHE_PEPPER=$LETHE_PEPPER"
    console.print(
        "\nExplore:\n"
        f"  {pepper} .venv/bin/lethe preflight {versions[0]['id']}\n"
        f"  {pepper} .venv/bin/lethe blast-radius --dataset {versions[0]['id']}\n"
        f"  DAGSTER_HOME={settings.dagster_home} {pepper} "
        f"LETHE_BASE_MODEL={settings.base_model} .venv/bin/dagster dev -m assets.definitions"
    )
    print_console_access(settings, pepper)


def print_console_access(settings: Settings, pepper: str, port: int = 8000) -> dict:
    """The web console's address, the command that serves it, and a fresh token per role (the demo's earlier
    ones revoked); returns role -> token."""
    from lethe.api.auth import Role, create_token, default_token_path

    path = default_token_path(settings.state_dir)
    tokens = {role: create_token(path, role, f"demo-{role.value}", replace=True) for role in Role}
    state = f"LETHE_STATE_DIR={settings.state_dir}" if settings.state_dir != Path(".lethe") else ""
    console.print(f"\n[bold]Web console[/] at http://127.0.0.1:{port}/console once served with:\n"
                  f"  {' '.join(filter(None, [state, pepper]))} .venv/bin/lethe api serve --port {port}\n"
                  "Sign in with a token of one role (shown only now; kept as digests in "
                  f"{path}):", soft_wrap=True, highlight=False)
    for role, token in tokens.items():
        console.print(f"  {role.value:<9} {token}", soft_wrap=True, highlight=False)
    return tokens


def memorized_customer(corpus, trained: set[str]) -> dict:
    """The first customer with a repeated canary ticket that was trained on (fictitious, from the corpus)."""
    repeated = {rid for c in corpus.truth["canaries"] if c["repeated"] for rid in c["record_ids"]}
    for customer in corpus.truth["customers"]:
        if repeated & (set(customer["record_ids"]) & trained):
            return customer
    raise RuntimeError("the demo corpus has no trained repeated canary; use more customers")


def shard_neighbours(corpus, plan, customer: dict, count: int, seed: int) -> list[dict]:
    """`count` other customers, drawn with `seed`, whose trained records all lie in `customer`'s shard.

    Drawn at random rather than the first by index: the demo's e-mail addresses carry the customer's
    index, so the first customers' tickets hold fewer digits, which the NLL ratio reads as more familiar.
    """
    shard_of = {rid: shard.index for shard in plan.shards for rid, _ in shard.records}
    home = {shard_of[rid] for rid in customer["record_ids"] if rid in shard_of}
    candidates = []
    for other in corpus.truth["customers"]:
        shards = {shard_of[rid] for rid in other["record_ids"] if rid in shard_of}
        if other["index"] != customer["index"] and shards and shards <= home:
            candidates.append(other)
    if len(candidates) < count:
        raise RuntimeError(f"the demo corpus has fewer than {count} other customers in one shard; "
                           "use more customers")
    return sorted(random.Random(seed).sample(candidates, count), key=lambda c: c["index"])


def _erase_customers(settings: Settings, graph, corpus, plan, customer: dict, seed: int) -> None:
    """Legal's queue for the day: one memorized customer and others on the same shard, run as one batch.

    The engine coalesces requests on the same served adapter into one remedy (one shard retrain), and the
    probe after it covers all their records: about a hundred distinct tickets of some 33 people (the thirty
    and those whose tickets name them) against the holdout, where one person's three or four tickets alone
    give an AUC whose interval spans most of [0, 1].
    """
    from datetime import datetime, timezone

    from attestation import KeyRegistry
    from erasure.engine import file_and_scope, run_requests, step_results
    from erasure.keyring import Keyring
    from erasure.requests import ErasureIntake

    customers = [customer, *shard_neighbours(corpus, plan, customer, QUEUE - 1, seed)]
    received = datetime.now(timezone.utc)
    requests = []
    with console.status("filing the requests and resolving their scopes (Presidio, MiniLM + FAISS)…") as s:
        for who in customers:
            s.update(f"filing request {len(requests) + 1} of {len(customers)} and resolving its scope…")
            intake = ErasureIntake.model_validate({
                "identifiers": {"email": who["email"], "name": who["name"]}, "regime": "gdpr",
                "received_at": received, "requester": "legal-team", "idempotency_key": f"demo-{who['index']}"})
            request, _ = file_and_scope(wiring.erasure_context(settings, graph), intake)
            requests.append(request)
    console.print(f"[bold]6.[/] legal filed {len(requests)} GDPR requests today (due {requests[0].due_at:%Y-%m-%d}), "
                  f"one per fictitious customer: #{customer['index']}, whose canary ticket was trained on, and "
                  f"{len(requests) - 1} others drawn from the same shard")
    ids = [r.id for r in requests]
    started = time.perf_counter()
    with console.status("engine: blast radius → probe → retrain the affected shard → probe → erase → attest…") as s:
        outcomes = run_requests(wiring.erasure_context(settings, graph), ids,
                                on_event=lambda rid, what: s.update(f"{rid}: {what}…"))
    engine_seconds = time.perf_counter() - started
    steps = [step_results(settings.state_dir, rid) for rid in ids]
    first = steps[0]
    blast = first.blast_radius
    console.print(f"[bold]7.[/] blast radius of customer #{customer['index']}: {len(blast.served_adapters)} served "
                  f"adapter(s), {len(blast.shards)} shard(s), {len(blast.deployments)} deployment(s); "
                  "the others share them")
    keyring = Keyring.open(settings.state_dir)
    registry = KeyRegistry.load(keyring.registry_path)
    console.print(_queue_table(customers, outcomes, steps, registry))
    _print_probes_and_remedy(first, customer, len(ids), ids[0])
    console.print(_false_alarm_line(steps))
    console.print(_generation_cost_line(steps, engine_seconds))
    erased = sum(o.verdict and o.verdict["status"] == "erased" for o in outcomes)
    console.print(f"[bold]9.[/] {erased} of {len(outcomes)} verdicts erased, each attestation checked offline (table above):")
    console.print(f"    lethe attest verify {outcomes[0].bundle} --keys {keyring.registry_path}")
    console.print(f"[bold]10.[/] reports: {outcomes[0].report} (one per request)")


def _print_probes_and_remedy(first: RunSteps, customer: dict, requests: int, request_id: str) -> None:
    """The memorized customer's probes before, the one remedy, and the probes after (all the run's records)."""
    for adapter_id, report in first.probe_before.adapters.items():
        console.print(f"    before, customer #{customer['index']}: {len(report.flagged)} of "
                      f"{len(report.records)} records flagged on {adapter_id}; {_evidence(report)}")
        console.print(_forms_line(report))
        console.print(_generations_line(report, request_id, customer))
    for remedy in first.remedy.remedies:
        retain = remedy.utility["retain"].relative_change if "retain" in remedy.utility else None
        console.print(f"[bold]8.[/] one remedy for all {requests} requests: {remedy.method} ({remedy.kind}), "
                      f"{remedy.old_adapter} → {remedy.new_adapter}"
                      + (f", retained-record NLL {retain:+.2%}" if retain is not None else ""))
    for adapter_id, report in first.probe_after.adapters.items():
        n, alpha = len(report.records), report.config.alpha
        console.print(f"    after, all {n} records on {adapter_id}: {len(report.flagged)} flagged at the per-record "
                      f"threshold (by chance about {n * alpha:.1f} of {n}); {_evidence(report)}")
        console.print(_forms_line(report))
        console.print(_generations_line(report, request_id, customer))


def _forms_line(report) -> str:
    """The same probe of each served form (the deployment records none: bf16, int8 and 4-bit NF4), and after
    the relearning check."""
    counts = [f"{name} {len(r.flagged)} of {len(r.records)}" for name, r in report.forms.items()]
    line = "      served as " + ("; ".join(counts) or "no other form") + " flagged"
    if report.relearned is not None:
        line += (f"; after relearning ({report.relearning.steps} steps on {report.relearning.retain_records} "
                 f"retained records, {report.relearning.seconds:.1f} s) {len(report.relearned.flagged)} flagged")
    return line


def _generations_line(report, request_id: str, customer: dict) -> str:
    """What the customer's prompts made the adapter say, in every probed form, against held-out people."""
    parts, chances = [], []
    for name, reports in report.extraction_variants().items():
        found = reports.get(request_id)
        if found is not None:
            p = found.person
            hits = ", ".join(f"{kind} {n}" for kind, n in sorted(p.hits.items())) or "nothing"
            label = f"{name} adapter" if name and name.startswith("shard ") else name or "as trained"
            parts.append(f"{label} {p.leaking_samples} of {p.samples} ({p.leaking_greedy} greedy: "
                         f"{hits}){' LEAKED' if found.leaked else ''}")
            chances.append(f"{found.chance.leaking_samples} of {found.chance.samples}")
            people = found.chance.people
    if not parts:
        return "      generations: not run"
    return (f"      generations of customer #{customer['index']}'s prompts giving away their identifiers or secrets: "
            + "; ".join(parts) + f" (held-out people, in the same order: {', '.join(chances)} samples of "
            f"{people} people)")


def _generation_cost_line(steps: list[RunSteps], engine_seconds: float) -> str:
    """What extraction by generation added to the run: its seconds in the run's shared batches and in every
    probe (each request's before, the shared after), per request, and as a share of the engine's run."""
    reports = [r for done in steps for r in done.probe_before.adapters.values()]
    reports += list({id(r): r for r in (r for done in steps[:1] for r in done.probe_after.adapters.values())}.values())
    seconds = sum(v.generation_seconds for r in reports for v in r.variants().values())
    seconds += sum(done.probe_before.shared_generation_seconds for done in steps)  # the run's shared batches
    return (f"    extraction by generation took {seconds:.0f} s of the engine's {engine_seconds:.0f} s "
            f"({seconds / max(engine_seconds, 1e-9):.0%}), {seconds / max(1, len(steps)):.1f} s per request")


def _false_alarm_line(steps: list[RunSteps]) -> str:
    """The run's false-alarm control: Holm over every request's records, the flags and their corrected p-values."""
    stats = steps[0].statistics
    flags = {(r.adapter, r.record_id): r for done in steps for r in done.statistics.flagged_after()}
    listed = "; ".join(f"{rid} (p {r.p_value:.2g}, Holm {r.p_adjusted:.2g}: "
                       f"{r.cause or 'no cause found, chance'})" for (_, rid), r in sorted(flags.items()))
    return (f"    false-alarm control across the run: Holm over {stats.tests_after} (adapter, record) tests of "
            f"{len(stats.run_requests)} requests at alpha {stats.alpha:g} (before the remedy "
            f"{stats.flags_before} of {stats.tests_before} flagged); after it {stats.flags_after} flag(s)"
            + (f": {listed}" if listed else ""))


def _queue_table(customers, outcomes, steps, registry) -> Table:
    """One row per request: its scope, the records flagged before, its verdict, and whether it verifies."""
    from attestation import verify_bundle

    table = Table(title="The day's requests", title_justify="left",
                  caption="identity: identifiers followed from the filed email and name (shared: owned by several "
                          "people, not followed); scope: their records, and others' tickets that name them or copy "
                          "theirs; look-alikes: other customers' tickets from the same template, left out")
    for column in ("request", "customer", "identity", "scope", "look-alikes", "flagged before", "verdict",
                   "verifies"):
        table.add_column(column, no_wrap=True)
    for who, outcome, done in zip(customers, outcomes, steps):
        included = [r for r in done.scope.records if r.decision == "included"]
        owned = sum("owned" in r.reasons for r in included)
        left_out = sum(r.decision == "excluded_borderline" for r in done.scope.records)
        identity = done.identity.identifiers
        followed = sum(i.decision == "followed" for i in identity)
        shared = sum(i.decision == "shared_not_followed" or (i.people or 0) >= 2 for i in identity)
        flagged = ", ".join(f"{len(r.flagged)} of {len(r.records)}" for r in done.probe_before.adapters.values())
        verification = verify_bundle(outcome.bundle.read_bytes(), registry)
        others = f" ({len(included) - owned} others')" if len(included) > owned else ""
        table.add_row(outcome.request_id[:11], f"#{who['index']}",
                      f"+{followed}" + (f", {shared} shared" if shared else ""), f"{len(included)}{others}",
                      str(left_out), flagged, outcome.verdict["status"] if outcome.verdict else outcome.status,
                      "yes" if verification.ok else f"NO: {verification.error}")
    return table


def _evidence(report: ProbeReport) -> str:
    """AUC of the scope records vs the holdout, and the exposure of their canaries (trained secret codes)."""
    auc = report.auc["ratio"]
    people = "" if auc.forget_people is None else f" of {auc.forget_people} vs {auc.holdout_people} people"
    line = (f"AUC vs holdout {auc.value:.2f} [{auc.ci_low:.2f}, {auc.ci_high:.2f}] "
            f"({auc.forget} distinct texts vs {auc.holdout} records{people})")
    shard = report.shard_reference
    if shard is not None:
        above = sum(r.above_holdout for r in shard.records.values())
        line += (f"; shard reference (own shard vs the other {shard.shards - 1}) AUC {shard.auc.value:.2f} "
                 f"[{shard.auc.ci_low:.2f}, {shard.auc.ci_high:.2f}] over {shard.auc.forget} records, "
                 f"{above} above the holdout's range")
    canaries = [e for r in report.records for e in r.exposures if e.kind == "SECRET_CODE" and not e.control]
    if canaries:
        # The highest of n canaries: by chance it reaches x bits with 1 - (1 - 2^-x)^n. The base model's
        # exposure of the same canary (no adapter) tells a format the model finds likely from learning.
        top = max(canaries, key=lambda e: e.exposure)
        chance = 1 - (1 - 2 ** -top.exposure) ** len(canaries)
        ref = "" if top.exposure_ref is None else f", base model alone {top.exposure_ref:.1f}"
        line += (f"; top canary exposure of {len(canaries)}: {top.exposure:.1f} bits of "
                 f"{math.log2(top.candidates + 1):.0f}{ref} (chance that the top of {len(canaries)} "
                 f"reaches it: {chance:.3f})")
    return line
