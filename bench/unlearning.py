"""Unlearning methods side by side (MUSE/TOFU-style table) and the cost of a shard retrain vs a full retrain.

A demo corpus is split, sharded by owner (a person's records share a shard) into K=4 shards with a 20%
holdout, and one LoRA adapter per shard is trained and merged; the same records also train a K=1
adapter. The scope is every record of --scope-customers customers of one shard, starting with owners
of repeated canaries (the records a model memorizes). Each method runs on the K=4 served adapter;
the exact retrain is the reference row. Per row: forget-vs-holdout AUC of the NLL ratio (with its
bootstrap interval), mean exposure of the scope's canaries (255 candidates: chance is ~1.4 bits,
maximum 8), mean extraction strength and exact memorization of the forget set, flagged records, the
relative change of the retained records' and the holdout's mean NLL against the original adapter,
and wall time. Each row is probed again as served in int8 and 4-bit NF4 (bitsandbytes) and after the
relearning check (20 steps on retained records only), with MUSE's PrivLeak for every one of them (the
forget AUC relative to the exact retrain's, in the same form): `survives` says in which forms a method's
forgetting holds. Then the time of the K=4 shard retrain against a full retrain of the K=1 adapter, and
both retrained adapters' retained NLL.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".lethe-bench" / "unlearning"


def progress(message: str) -> None:
    """One line of progress on stderr (stdout carries only the figures)."""
    print(message, file=sys.stderr, flush=True)


def _scope(corpus, plan, customers: int) -> tuple[int, list[str]]:
    """One shard, and the trained records of `customers` of its customers (repeated-canary owners first)."""
    shard_of = {rid: s.index for s in plan.shards for rid, _ in s.records}
    repeated = {rid for can in corpus.truth["canaries"] if can["repeated"] for rid in can["record_ids"]}
    people = corpus.truth["customers"]
    owners = [c for c in people if repeated & set(c["record_ids"]) & set(shard_of)]
    shard = shard_of[next(r for r in owners[0]["record_ids"] if r in shard_of)]
    ordered = owners + [c for c in people if c not in owners]
    chosen = [c for c in ordered if any(shard_of.get(r) == shard for r in c["record_ids"])][:customers]
    return shard, [rid for c in chosen for rid in c["record_ids"] if shard_of.get(rid) == shard]


BENCH_FORMS = ("int8", "4bit-nf4")


def _probe_figures(report) -> dict:
    """One probe's columns: forget AUC with its interval, canary exposure, extraction, flags."""
    exposures = [e.exposure for r in report.records for e in r.exposures if not e.control]
    auc, n = report.auc["ratio"], len(report.records)
    return {"forget_auc": round(auc.value, 3), "forget_auc_ci": [round(auc.ci_low, 3), round(auc.ci_high, 3)],
            "canary_exposure_bits": round(sum(exposures) / len(exposures), 2) if exposures else None,
            "extraction_strength": round(sum(r.scores["es"] for r in report.records) / n, 3),
            "exact_memorization": round(sum(r.scores["em"] for r in report.records) / n, 3),
            "flagged": len(report.flagged), "forget_records": n}


def _privleak(rows: list[dict]) -> None:
    """MUSE's PrivLeak of every row and variant, (AUC − AUC of the exact retrain) / AUC of the exact retrain,
    in the same form; and `survives`: the forms (fp32, each served form, after relearning) with no flag."""
    reference = next(r for r in rows if r["method"] == "retrain")
    for row in rows:
        row["privleak"] = round((row["forget_auc"] - reference["forget_auc"]) / reference["forget_auc"], 3)
        for name, variant in row["variants"].items():
            same = reference["variants"][name]["forget_auc"]
            variant["privleak"] = round((variant["forget_auc"] - same) / same, 3)
        row["survives"] = [name for name, v in [("fp32", row), *row["variants"].items()] if v["flagged"] == 0]


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print progress to stderr and the figures as one JSON line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=120)
    parser.add_argument("--scope-customers", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    import shutil

    from lethe.demo.corpus import generate_corpus
    from lethe.demo.models import build_demo_base_model
    from lineage.dataset import derive_without, plan_dataset_version
    from lineage.hashing import content_sha256
    from unlearning.adapters import sequence_nll
    from unlearning.methods.base import RemedyInput
    from unlearning.methods.registry import get_method, method_names, parse_config
    from unlearning.forms import parse_form
    from unlearning.probes import ProbeConfig, SecretSpan, open_probe_model, probe_adapter
    from unlearning.relearn import RelearnConfig, relearn_adapter
    from unlearning.sharded import train_sharded_adapters
    from unlearning.training import LoraTrainingConfig

    base = build_demo_base_model(ROOT / ".lethe-bench" / "models" / "base-tiny")
    if STATE.exists():
        shutil.rmtree(STATE)
    corpus = generate_corpus(customers=args.customers, seed=args.seed)
    texts = {r["id"]: r["text"] for r in corpus.records}
    owner = {rid: c["email"] for c in corpus.truth["customers"] for rid in c["record_ids"]}
    records = [(r["id"], content_sha256(r["text"])) for r in corpus.records]
    now = datetime.now(timezone.utc)
    plans = {k: plan_dataset_version("bench", records, now, k, 0.2, 0, owner) for k in (4, 1)}
    config = LoraTrainingConfig(epochs=args.epochs)

    def train(plan, out: Path):
        started = time.perf_counter()
        done = train_sharded_adapters(base, {s.id: [texts[r] for r, _ in s.records] for s in plan.shards}, config,
                                      out, {"dataset_version": plan.version.id})
        return done, time.perf_counter() - started

    progress("training the K=4 and K=1 adapters ...")
    original4, train4_s = train(plans[4], STATE / "k4")
    original1, train1_s = train(plans[1], STATE / "k1")
    shard, scope = _scope(corpus, plans[4], args.scope_customers)
    derived = {k: derive_without(plans[k], set(scope), now) for k in (4, 1)}
    forget = {rid: texts[rid] for rid in scope}
    holdout = {rid: texts[rid] for rid, _ in plans[4].holdout}
    kept = sorted(rid for s in derived[4].shards for rid, _ in s.records)
    retain = {rid: texts[rid] for rid in kept[:: max(1, len(kept) // 200)]}
    secrets = {}
    for can in corpus.truth["canaries"]:
        for rid in can["record_ids"]:
            if rid in forget:
                start = forget[rid].rindex(can["value"])
                secrets[rid] = [SecretSpan(start, start + len(can["value"]), "canary")]
    probe_config = ProbeConfig(generate=False, exposure_candidates=255, bootstrap_resamples=500)
    progress(f"scope: {len(scope)} records of {args.scope_customers} customers in shard {shard}, "
             f"{len(secrets)} with a canary; {len(holdout)} holdout, {len(retain)} retained sampled")

    def mean_nll(adapter: Path, sample: dict) -> float:
        values = sequence_nll(base, adapter, list(sample.values()))
        return sum(values) / len(values)

    base_retain, base_holdout = mean_nll(original4.served_path, retain), mean_nll(original4.served_path, holdout)

    def probe(adapter: Path, form=None) -> dict:
        return _probe_figures(probe_adapter(open_probe_model(base, adapter, form), forget, holdout, probe_config,
                                            secrets=secrets))

    def row(name: str, kind: str, adapter: Path, seconds: float) -> dict:
        figures = probe(adapter)
        variants = {form: probe(adapter, parse_form(form)) for form in BENCH_FORMS}
        relearned = STATE / f"relearned-{name}"
        facts = relearn_adapter(base, adapter, list(retain.values()), RelearnConfig(), relearned)
        variants["relearned"] = {**probe(relearned), "relearn_seconds": round(facts.seconds, 1)}
        return {"method": name, "kind": kind, **figures, "variants": variants,
                "retain_nll_change": round(mean_nll(adapter, retain) / base_retain - 1, 4),
                "holdout_nll_change": round(mean_nll(adapter, holdout) / base_holdout - 1, 4),
                "seconds": round(seconds, 1)}

    rows = [row("original", "none", original4.served_path, train4_s)]
    methods = ["retrain"] + [m for m in method_names() if m != "retrain"]
    retrain_s = None
    for name in methods:
        progress(f"running {name} ...")
        remedy = RemedyInput(base, original4.served_path, forget, retain, STATE / f"remedy-{name}",
                             shards={s.id: {r: texts[r] for r, _ in s.records} for s in derived[4].shards},
                             run_dir=STATE / "k4", training_config=config.model_dump(mode="json"),
                             manifest={"dataset_version": derived[4].version.id})
        outcome = get_method(name).run(parse_config(name), remedy)
        rows.append(row(name, outcome.kind.value, outcome.adapter_dir, outcome.seconds))
        if name == "retrain":
            retrain_s = outcome.seconds
            retrained_shards = len(outcome.details["shards_retrained"])

    _privleak(rows)
    progress("full retrain of the K=1 adapter ...")
    full, full_s = train(derived[1], STATE / "k1-retrain")
    retrain_row = next(r for r in rows if r["method"] == "retrain")
    figures = {
        "benchmark": "unlearning", "device": "cpu", "customers": args.customers, "records": len(records),
        "scope_records": len(scope), "holdout_records": len(holdout), "epochs": args.epochs,
        "rows": rows,
        # Methods whose forgetting holds at fp32 but not as served in some form or after relearning.
        "caught_beyond_fp32": {r["method"]: [n for n, v in r["variants"].items() if v["flagged"]] for r in rows
                               if r["flagged"] == 0 and any(v["flagged"] for v in r["variants"].values())},
        "shard_retrain_k4_s": round(retrain_s, 1), "shards_retrained": retrained_shards,
        "full_retrain_k1_s": round(full_s, 1), "shard_speedup": round(full_s / retrain_s, 2),
        "retain_nll_change_k4_retrain": retrain_row["retain_nll_change"],
        "retain_nll_k1_full_retrain_vs_k1_original": round(
            mean_nll(full.served_path, retain) / mean_nll(original1.served_path, retain) - 1, 4),
        "train_k4_s": round(train4_s, 1), "train_k1_s": round(train1_s, 1),
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
