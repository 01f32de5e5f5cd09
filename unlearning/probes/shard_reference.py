"""The shard-reference membership test: every trained record is IN one shard adapter and OUT of the K−1 others.

A record's statistic is how much likelier its own shard's adapter finds it than the other shards' adapters
do: s = mean over the others of NLL − NLL under its own (nats per token; the shared base cancels). It is
the likelihood-ratio idea of LiRA/RMIA with reference models Lethe already has, so no shadow model is
trained. The null is the holdout, OUT of every shard: a record trained in shard k is compared with the
held-out records' same difference taken with shard k as "their own" (the same adapters on both sides). A
memorized record sits above the holdout's range; after an exact retrain its former shard's adapter no
longer saw it, and its statistic must look like the holdout's.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from unlearning.probes.calibration import auc_with_ci
from unlearning.probes.report import AucReport, ProbeConfig, ShardReferenceRecord, ShardReferenceReport

__all__ = ["shard_adapter_dirs", "shard_reference"]


def _statistic(nll: np.ndarray, own: int) -> float:
    """mean NLL under the other shards' adapters − NLL under its own (larger: more memorized by its own)."""
    return float(np.delete(nll, own).mean() - nll[own])


def _stand_in_shards(holdout_ids: Sequence[str], owns: Sequence[int]) -> list[int]:
    """Each held-out record's stand-in "own" shard for the AUC, drawn (fixed by its id) from the scope's own
    shards, so both sides of the AUC are measured against the same adapters. A retrained shard adapter
    saw fewer records than its siblings and scores every text differently; a holdout spread over all K
    shards would then make an erased record look less (or more) member-like than it is."""
    ordered = sorted(owns)
    return [ordered[int.from_bytes(hashlib.sha256(h.encode()).digest()[:8], "big") % len(ordered)]
            for h in holdout_ids]


def shard_reference(nll_by_shard: Sequence[Mapping[str, float]], scope_shard: Mapping[str, int],
                    holdout_ids: Sequence[str], config: ProbeConfig, started: float | None = None
                    ) -> ShardReferenceReport:
    """The test from each shard adapter's mean token NLL of every text (by record id), in shard order.

    `scope_shard`: scope record id -> the position (in `nll_by_shard`) of the shard it was trained in.
    A record's null is the holdout scored with the record's own shard taken as theirs (same adapters).
    """
    started = time.perf_counter() if started is None else started
    shards = len(nll_by_shard)
    if shards < 2 or len(holdout_ids) < 2 or not scope_shard:
        raise ValueError("the shard-reference test needs two shards, two held-out records and a scope record")

    def row(record_id: str) -> np.ndarray:
        return np.array([float(by_id[record_id]) for by_id in nll_by_shard])

    holdout_rows = [row(h) for h in holdout_ids]
    nulls = {k: np.array([_statistic(r, k) for r in holdout_rows]) for k in sorted(set(scope_shard.values()))}
    records = {}
    for record_id, own in scope_shard.items():
        value, null = _statistic(row(record_id), own), nulls[own]
        records[record_id] = ShardReferenceRecord(
            own_shard=own, statistic=value, p_value=(1 + int(np.sum(null >= value))) / (1 + len(null)),
            above_holdout=bool(value > null.max()))
    stand_ins = _stand_in_shards(holdout_ids, list(scope_shard.values()))
    held = np.array([_statistic(r, k) for r, k in zip(holdout_rows, stand_ins)])
    auc = auc_with_ci(np.array([r.statistic for r in records.values()]), held,
                      resamples=config.bootstrap_resamples)
    pooled = np.concatenate(list(nulls.values()))
    quantiles = dict(zip(("q05", "q50", "q95"), np.quantile(pooled, [0.05, 0.5, 0.95]).tolist()))
    return ShardReferenceReport(shards=shards, auc=AucReport(**vars(auc)),
                                holdout_range={**quantiles, "max": float(pooled.max())}, records=records,
                                seconds=time.perf_counter() - started)


def shard_adapter_dirs(served_dir: Path, shard_ids: Sequence[str]) -> list[Path] | None:
    """The shard adapters beside a served adapter Lethe trained (RUN/served, RUN/shards/<id[:16]>), in the
    order given; None when any is missing (an approximate remedy's adapter has no shards of its own)."""
    dirs = [Path(served_dir).parent / "shards" / shard_id[:16] for shard_id in shard_ids]
    return dirs if all(d.is_dir() for d in dirs) else None
