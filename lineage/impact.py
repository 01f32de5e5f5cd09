"""Results of impact queries (blast radius, preflight) as pydantic models, with paths derived."""

from __future__ import annotations

from pydantic import BaseModel, Field, computed_field


class AdapterRef(BaseModel):
    id: str
    state: str | None = None


class DatasetRef(BaseModel):
    id: str
    name: str | None = None


class DeploymentRef(BaseModel):
    id: str
    endpoint: str | None = None


class BlastRadius(BaseModel):
    """Everything downstream of a subject, a record or a dataset version, as a small subgraph."""

    start: str = Field(description="what the traversal started from: subject, record or dataset")
    subject_keys_found: int = 0
    records: int = 0
    records_erased: int = 0
    records_held_out: int = 0
    datasets: list[DatasetRef] = []
    held_out_in: list[DatasetRef] = []
    shards: list[str] = []
    runs: list[str] = []
    adapters: list[AdapterRef] = []
    deployments: list[DeploymentRef] = []
    depth_limit: int
    depth_limit_hit: bool = False
    # Edges of the subgraph, so every path can be rebuilt: [source id, target id].
    record_shard: list[tuple[str, str]] = []
    shard_dataset: list[tuple[str, str]] = []
    run_shard: list[tuple[str, str]] = []
    run_adapter: list[tuple[str, str]] = []
    adapter_merged: list[tuple[str, str]] = []
    adapter_deployment: list[tuple[str, str]] = []

    @property
    def is_empty(self) -> bool:
        return not (self.records or self.shards or self.adapters)

    def paths(self, limit: int = 50) -> tuple[list[list[str]], bool]:
        """Record → shard → run → adapter (→ merged adapters) → deployment chains; (paths, truncated)."""
        out: list[list[str]] = []
        by = _index
        shard_runs, run_adapters = by(self.run_shard, reverse=True), by(self.run_adapter)
        merged, deployed = by(self.adapter_merged), by(self.adapter_deployment)
        starts = self.record_shard or [("", s) for s in self.shards]

        def extend(prefix: list[str], adapter: str, seen: frozenset[str]) -> None:
            nexts = [m for m in merged.get(adapter, []) if m not in seen]
            ends = deployed.get(adapter, [])
            if not nexts:
                for end in ends or [None]:
                    out.append(prefix + [adapter] + ([end] if end else []))
            for end in ends if nexts else []:
                out.append(prefix + [adapter, end])
            for m in nexts:
                extend(prefix + [adapter], m, seen | {m})

        for record, shard in starts:
            head = ([record] if record else []) + [shard]
            runs = shard_runs.get(shard, [])
            if not runs:
                out.append(head)
            for run in runs:
                for adapter in run_adapters.get(run, []) or [None]:
                    if adapter is None:
                        out.append(head + [run])
                    else:
                        extend(head + [run], adapter, frozenset({adapter}))
            if len(out) > limit:
                return out[:limit], True
        return out, False


def _index(pairs: list[tuple[str, str]], reverse: bool = False) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a, b in pairs:
        key, value = (b, a) if reverse else (a, b)
        out.setdefault(key, []).append(value)
    return out


class Preflight(BaseModel):
    """Is a dataset version safe to train on? Counts only, and the reasons it is not."""

    dataset: str
    records: int
    held_out: int
    shards: int
    subjects: int
    records_under_open_requests: int
    records_under_closed_requests: int
    tombstoned_records: int
    erased_content_matches: int

    @computed_field(description="why the version is not safe to fine-tune on (empty when it is)")
    @property
    def blocking_reasons(self) -> list[str]:
        reasons = []
        if self.tombstoned_records:
            reasons.append(f"{self.tombstoned_records} tombstoned (erased) record(s) are in this version")
        if self.erased_content_matches:
            reasons.append(f"{self.erased_content_matches} record(s) carry the content of erased records")
        if self.records_under_open_requests:
            reasons.append(f"{self.records_under_open_requests} record(s) are under an open erasure request")
        return reasons

    @computed_field(description="safe to fine-tune on: no erased or requested data")
    @property
    def ok(self) -> bool:
        return not self.blocking_reasons
