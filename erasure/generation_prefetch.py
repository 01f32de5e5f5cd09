"""A run's generations in shared batches, before each request's own probe.

Each request's before-probe is a step of its own (resumable, in its run folder), and it prompts its own
person. A model generates far more cheaply in wide batches than in one person's rows. So before the
requests' probes, the engine generates every request's person on each served adapter they reach (the
adapter as trained, each form it is served in, and the shard adapters their records were trained in) in
shared batches: unlearning.probes.prefetch_extraction. Each probe then finds its person's counts in the
probe memo and generates nothing. Only counts are kept, in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from erasure.context import ErasureContext
from erasure.extraction import remedy_extraction_plan
from erasure.probing import erasure_probe_config
from erasure.remediation import (adapter_node, calibration_holdout_ids, deployed_forms, lethe_manifest, own_shard_dirs,
                                 probed_forms)
from lineage.store import queries

__all__ = ["prefetch_generations"]


def prefetch_generations(ctx: ErasureContext, adapter_dir: Path, people: Mapping[str, tuple[Sequence[str], Mapping]],
                         forms: Sequence[str] | None, config=None) -> int:
    """Generate every request's person (`people`: request id -> (scope ids, keys)) on the served adapter at
    `adapter_dir`, on each of its probed forms and on their own shards' adapters, in shared batches, with the
    probes' `config` (default erasure_probe_config()); returns how many (person, model) generations ran.
    Nothing is written."""
    from unlearning.probes import open_probe_model, prefetch_extraction

    config = config or erasure_probe_config()
    manifest = lethe_manifest(adapter_dir)
    plan = queries.dataset_plan(ctx.graph, manifest["dataset_version"])
    trained = {rid for s in plan.shards for rid, _ in s.records}
    scope = sorted({rid for ids, _ in people.values() for rid in ids if rid in trained})
    if not scope or not config.generate:
        return 0
    recorded = forms if forms is not None else deployed_forms(ctx.graph, adapter_node(ctx.graph, adapter_dir)["id"])
    served = probed_forms(recorded)
    # The remedy's calibration set (erasure.remediation._prepare), so its probes find the same held-out people.
    holdout = calibration_holdout_ids(ctx, plan, set(scope))
    extraction = remedy_extraction_plan(ctx, people, scope, holdout, config, len(served))
    if extraction is None:
        return 0
    base, generated = ctx.require_base_model(), 0
    for form in (None, *served):
        generated += prefetch_extraction(open_probe_model(base, adapter_dir, form), extraction, config)
    for shard_dir in own_shard_dirs(adapter_dir, plan, set(scope)).values():
        generated += prefetch_extraction(open_probe_model(base, shard_dir), extraction, config)
    return generated
