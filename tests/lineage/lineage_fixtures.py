"""Small lineage graphs for the graph tests, written through the real writers."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from lineage.content_store import ContentStore
from lineage.dataset import plan_dataset_version, write_dataset_version
from lineage.ingest import ingest_batch
from lineage.models import Adapter, Deployment, Edge, FineTuneRun
from lineage.record_batch import parse_jsonl
from lineage.store.writers import LineageWriter

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def jsonl(records: list[dict]) -> bytes:
    return b"\n".join(json.dumps(r).encode() for r in records) + b"\n"


def tickets(n: int, owner_every: int = 5) -> list[dict]:
    """n tickets; every `owner_every`-th belongs to Ada, the rest to customers c<i>."""
    out = []
    for i in range(n):
        subject = ({"email": "ada.lovelace@example.com", "phone": "+1 202 555 0142", "name": "Ada Lovelace"}
                   if i % owner_every == 0 else {"email": f"c{i}@example.org"})
        out.append({"id": f"t-{i:04d}", "subject": subject, "text": f"Ticket {i}: my parcel {i * 7} is late.",
                    "source": "helpdesk", "created_at": "2025-06-01T10:00:00Z"})
    return out


def build_lineage(graph, keyer, content: ContentStore, n: int = 40, merged_depth: int = 1):
    """Records → 4 shards → dataset version → run → per-shard adapters → merged chain → deployment."""
    writer = LineageWriter(graph, batch_size=7)  # small batches: exercise batching
    report = ingest_batch(parse_jsonl(jsonl(tickets(n)), keyer), writer, content)
    plan = plan_dataset_version("tickets", report.kept, NOW, shard_count=4, holdout_fraction=0.1, seed=1)
    write_dataset_version(writer, plan)
    # SISA: one run per shard, each producing that shard's adapter; all merge into the served one.
    runs = [FineTuneRun(id=f"run-{s.index}", base_model="tiny", base_model_sha256="0" * 64,
                        config_sha256="1" * 64, seed=0, code_version="test", started_at=NOW)
            for s in plan.shards]
    writer.nodes(runs)
    writer.edges("TRAINED_ON", [Edge(source=f"run-{s.index}", target=s.id) for s in plan.shards])
    shard_adapters = [Adapter(id=f"a-shard-{s.index}", sha256="2" * 64, uri=f"file:///a{s.index}")
                      for s in plan.shards]
    chain = [Adapter(id=f"a-merged-{d}", sha256="3" * 64, uri=f"file:///m{d}") for d in range(merged_depth)]
    writer.nodes(shard_adapters + chain)
    writer.edges("PRODUCED", [Edge(source=f"run-{s.index}", target=f"a-shard-{s.index}") for s in plan.shards])
    writer.edges("MERGED_INTO", [Edge(source=a.id, target=chain[0].id) for a in shard_adapters]
                 + [Edge(source=chain[d].id, target=chain[d + 1].id) for d in range(merged_depth - 1)])
    writer.nodes([Deployment(id="support-bot", endpoint="https://bot.example.com/v1")])
    writer.edges("DEPLOYED_TO", [Edge(source=chain[-1].id, target="support-bot")])
    return plan, report
