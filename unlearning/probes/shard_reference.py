"""The shard-reference membership test: every trained record is IN one shard adapter and OUT of the K−1 others.

A record's statistic is how much likelier its own shard's adapter finds it than the other shards' adapters
do: s = mean over the others of NLL − NLL under its own (nats per token; the shared base cancels). It is
the likelihood-ratio idea of LiRA/RMIA with reference models Lethe already has, so no shadow model is
trained. The null is the holdout, OUT of every shard: for each held-out record and each shard taken as
"its own", the same difference. A memorized record sits above the holdout's range; after an exact retrain
its former shard's adapter no longer saw it, and its statistic must look like the holdout's.
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


def _shard_of(record_id: str, shards: int) -> int:
    """A held-out record's stand-in "own" shard for the AUC: fixed by its id, spread evenly."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:8], "big") % shards


def _statistic(nll: np.ndarray, own: int) -> float:
    """mean NLL under the other shards' adapters − NLL under its own (larger: more memorized by its own)."""
    return float(np.delete(nll, own).mean() - nll[own])


def shard_reference(nll_by_shard: Sequence[Mapping[str, float]], scope_shard: Mapping[str, int],
                    holdout_ids: Sequence[str], config: ProbeConfig, started: float | None = None
                    ) -> ShardReferenceReport:
    """The test from each shard adapter's mean token NLL of every text (by record id), in shard order.

    `scope_shard`: scope record id -> the position (in `nll_by_shard`) of the shard it was trained in.
    """
    started = time.perf_counter() if started is None else started
    shards = len(nll_by_shard)
    if shards < 2 or len(holdout_ids) < 2 or not scope_shard:
        raise ValueError("the shard-reference test needs two shards, two held-out records and a scope record")

    def row(record_id: str) -> np.ndarray:
        return np.array([float(by_id[record_id]) for by_id in nll_by_shard])

    null = np.array([_statistic(row(h), k) for h in holdout_ids for k in range(shards)])
    records = {}
    for record_id, own in scope_shard.items():
        value = _statistic(row(record_id), own)
        p = (1 + int(np.sum(null >= value))) / (1 + len(null))
        records[record_id] = ShardReferenceRecord(own_shard=own, statistic=value, p_value=p)
    held = np.array([_statistic(row(h), _shard_of(h, shards)) for h in holdout_ids])
    auc = auc_with_ci(np.array([r.statistic for r in records.values()]), held,
                      resamples=config.bootstrap_resamples)
    quantiles = dict(zip(("q05", "q50", "q95"), np.quantile(null, [0.05, 0.5, 0.95]).tolist()))
    return ShardReferenceReport(shards=shards, auc=AucReport(**vars(auc)),
                                holdout_range={**quantiles, "max": float(null.max())}, records=records,
                                seconds=time.perf_counter() - started)


def shard_adapter_dirs(served_dir: Path, shard_ids: Sequence[str]) -> list[Path] | None:
    """The shard adapters beside a served adapter Lethe trained (RUN/served, RUN/shards/<id[:16]>), in the
    order given; None when any is missing (an approximate remedy's adapter has no shards of its own)."""
    dirs = [Path(served_dir).parent / "shards" / shard_id[:16] for shard_id in shard_ids]
    return dirs if all(d.is_dir() for d in dirs) else None
