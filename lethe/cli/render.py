"""Rich renderings of results: tables for people, JSON for scripts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from lineage.impact import BlastRadius, Preflight

if TYPE_CHECKING:  # the CLI imports the erasure domain only when a command needs it
    from erasure.identity import IdentityResult
    from erasure.statistics import StatisticsResult
    from erasure.sweep import SweepResult

console = Console(highlight=False)


def counts_table(title: str, counts: dict[str, int | str]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in counts.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    return table


def blast_radius(result: BlastRadius, max_paths: int = 20) -> None:
    """Print a blast radius: counts, the touched adapters and deployments, and sample paths."""
    summary = {
        "records": result.records, "erased records among them": result.records_erased,
        "held out (never trained on)": result.records_held_out, "shards": len(result.shards),
        "dataset versions": len(result.datasets), "fine-tune runs": len(result.runs),
        "adapters": len(result.adapters), "deployments": len(result.deployments),
    }
    if result.start == "subject":
        summary = {"subject keys found": result.subject_keys_found, **summary}
    console.print(counts_table(f"Blast radius of the {result.start}", summary))
    if result.depth_limit_hit:
        console.print(f"[yellow]depth limit {result.depth_limit} reached: adapters merged further "
                      "than that are not shown; rerun with a larger --depth[/]")
    if result.is_empty:
        console.print("[green]Nothing in the graph learned from this.[/]")
        return
    if result.adapters:
        table = Table(title="Adapters", title_justify="left")
        table.add_column("adapter")
        table.add_column("state")
        table.add_column("deployed to")
        deployed: dict[str, list[str]] = {}
        for adapter, deployment in result.adapter_deployment:
            deployed.setdefault(adapter, []).append(deployment)
        for adapter in result.adapters:
            table.add_row(adapter.id, adapter.state or "?", ", ".join(deployed.get(adapter.id, [])) or "-")
        console.print(table)
    paths, truncated = result.paths(limit=max_paths)
    tree = Tree("Paths (record → shard → run → adapter → deployment)")
    for path in paths:
        tree.add(" → ".join(p[:24] for p in path))
    if truncated:
        tree.add(f"[dim]… more paths not shown (limit {max_paths}); use --json for the whole subgraph[/]")
    console.print(tree)


def preflight(result: Preflight) -> None:
    console.print(counts_table(f"Preflight of {result.dataset}", {
        "training records": result.records, "held-out records": result.held_out, "shards": result.shards,
        "subject keys": result.subjects,
        "records under open erasure requests": result.records_under_open_requests,
        "records under closed erasure requests": result.records_under_closed_requests,
        "tombstoned records present": result.tombstoned_records,
        "records with erased content": result.erased_content_matches,
    }))
    if result.ok:
        console.print("[bold green]OK[/]: safe to fine-tune on this version.")
    else:
        console.print("[bold red]BLOCKED[/]: " + "; ".join(result.blocking_reasons))


def probe_report(report) -> None:
    """Print a probe report: one row per record with its scores, p-values and verdict, then the summary."""
    table = Table(title=f"Probes of adapter {report.adapter_sha256[:16]}… ({report.device}, {report.dtype})",
                  title_justify="left")
    for column in ("record", "nll", "ref_nll", "ratio", "min-k%++", "es", "em", "min p", "exposure",
                   "regurg.", "verdict"):
        table.add_column(column, justify="left" if column in ("record", "verdict") else "right")
    for r in report.records:
        s = r.scores
        p = min(v.value for v in r.p_values.values())
        trained = [e for e in r.exposures if not e.control]
        # "adapter (base)": the base model's own rank of the value shows what the format alone gives away
        top = max(trained, key=lambda e: e.exposure) if trained else None
        exposure = "–" if top is None else f"{top.exposure:.1f}" + (
            "" if top.exposure_ref is None else f" ({top.exposure_ref:.1f})")
        cosine = "–" if r.regurgitation_cosine is None else f"{r.regurgitation_cosine:.2f}"
        verdict = f"[bold red]memorized[/] ({', '.join(r.flagged_by)})" if r.flagged else "[green]not detected[/]"
        table.add_row(r.record_id, f"{s['nll']:.3f}", f"{s['ref_nll']:.3f}", f"{s['ratio']:.3f}",
                      f"{s['min_k_pp']:.2f}", f"{s['es']:.2f}", f"{s['em']:.2f}", f"{p:.1e}", exposure, cosine,
                      verdict)
    console.print(table)
    auc = report.auc["ratio"]
    summary = {
        "flagged": f"{len(report.flagged)} of {len(report.records)}",
        "alpha (per score)": f"{report.config.alpha} ({report.per_score_threshold:.4f})",
        "holdout records": report.holdout_ids,
        "holdout false-flag rate (leave-one-out)": f"{report.holdout_false_flag_rate:.3f}",
        "AUC, nll ratio, vs holdout": f"{auc.value:.2f} [{auc.ci_low:.2f}, {auc.ci_high:.2f}]",
    }
    from erasure.report_builder import generation_line

    for label in report.extraction:
        summary[f"generations ({label})"] = generation_line(report, label)
    console.print(counts_table("Summary", summary))
    if report.forms:
        console.print(counts_table("Served forms (each calibrated on its own holdout scores)", {
            name: f"{len(r.flagged)} of {len(r.records)} flagged; AUC {r.auc['ratio'].value:.2f} "
                  f"[{r.auc['ratio'].ci_low:.2f}, {r.auc['ratio'].ci_high:.2f}]"
            for name, r in report.forms.items()}))
    for note in report.notes:
        console.print(f"[dim]note:[/] {note}")


def remedy_record(record) -> None:
    """Print a remedy: before/after probe table per scope record, then what was done and what it cost."""
    if record.noop_reason:
        console.print(f"[yellow]nothing to do:[/] {record.noop_reason}")
        return
    after = {r.record_id: r for r in record.after.records}
    table = Table(title=f"Probes before and after ({record.old_adapter} → {record.new_adapter})",
                  title_justify="left")
    for column in ("record", "ratio before", "ratio after", "exposure before", "exposure after", "before",
                   "after"):
        table.add_column(column, justify="left" if column == "record" else "right")

    def exposure(r) -> str:
        values = [e.exposure for e in r.exposures if not e.control]
        return f"{max(values):.1f}" if values else "–"

    def verdict(r) -> str:
        return "[bold red]memorized[/]" if r.flagged else "[green]not detected[/]"

    for b in record.before.records:
        a = after[b.record_id]
        table.add_row(b.record_id, f"{b.scores['ratio']:.3f}", f"{a.scores['ratio']:.3f}", exposure(b), exposure(a),
                      verdict(b), verdict(a))
    console.print(table)
    auc_before, auc_after = record.before.auc["ratio"], record.after.auc["ratio"]
    summary = {
        "method": " → ".join(a["method"] for a in record.attempts) + f" ({record.kind})",
        "AUC vs holdout, before": f"{auc_before.value:.2f} [{auc_before.ci_low:.2f}, {auc_before.ci_high:.2f}]",
        "AUC vs holdout, after": f"{auc_after.value:.2f} [{auc_after.ci_low:.2f}, {auc_after.ci_high:.2f}]",
        "still flagged": len(record.still_flagged),
        "new adapter": f"{record.new_adapter} ({record.new_adapter_path})",
        "new dataset version": record.new_dataset_version or "– (approximate: same data)",
        "old weights deleted": ", ".join(d["adapter"] for d in record.deleted_weights) or "–",
        "seconds": f"{sum(a['seconds'] for a in record.attempts):.1f}",
    }
    for name, figures in record.utility.items():
        summary[f"{name} NLL change"] = f"{figures['relative_change'] * 100:+.2f}% ({figures['records']} records)"
    console.print(counts_table("Remedy", summary))
    if record.escalated:
        console.print(f"[yellow]escalated:[/] {record.escalation_reason}")


def identity_table(identity: IdentityResult) -> None:
    """The identity found at filing: kinds, truncated keys, how each was found and what became of it."""
    table = Table(title="Identity (values are never stored)", title_justify="left")
    for column in ("kind", "key", "hop", "decision", "records", "people", "value read back", "linked by"):
        table.add_column(column)
    for i in identity.identifiers:
        linked = ", ".join(i.linked_by[:3]) + (" …" if len(i.linked_by) > 3 else "")
        table.add_row(i.kind, f"hmac:{i.key[:12]}…", str(i.hop), i.decision.value, str(i.owned_records),
                      "—" if i.people is None else str(i.people), "yes" if i.value_source else "no",
                      linked or "—")
    console.print(table)
    for note in identity.notes:
        console.print(f"note: {note}")


def sweep_line(name: str, sweep: SweepResult) -> None:
    """One line per sweep: what it scanned and what it found."""
    hits = ", ".join(f"{h.record_id} ({h.disposition})" for h in sweep.hits[:5]) or "none"
    console.print(f"{name}: {sweep.texts_scanned} texts and {sweep.batch_lines_scanned} batch lines scanned "
                  f"for {', '.join(sweep.identifier_kinds) or 'no identifier'} and {sweep.secrets} secret(s); "
                  f"hits: {hits}")


def statistics_line(stats: StatisticsResult) -> None:
    """The run's false-alarm control and this request's flags in it."""
    flags = ", ".join(f"{r.record_id} (Holm p {r.p_adjusted:.2g}: {r.cause or 'chance, no cause found'})"
                      for r in stats.flagged_after()) or "none"
    console.print(f"false-alarm control: {stats.method} at alpha {stats.alpha:g} over {stats.tests_after} "
                  f"tests of {len(stats.run_requests)} request(s); {stats.flags_after} flag(s) in the run; "
                  f"this request's: {flags}")
