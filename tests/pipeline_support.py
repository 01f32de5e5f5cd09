"""The Dagster pipeline materialized for the tests: two batch partitions, then training and deployment.

The demo corpus's pipeline is trained once per session (`shared_pipeline` in tests/conftest.py). Its state
folder and graph are kept as a snapshot and put back before each test that uses them, so no test sees what
another one changed and any order of the tests gives the same results.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from lethe.demo.corpus import write_jsonl
from lethe.settings import Settings
from lineage.local_files import private_dir
from lineage.store import GraphStore
from tests.graph_snapshot import GraphDump

PEPPER = "cd" * 32
# A small corpus gives each of the 4 shards few steps per epoch: train longer than the demo does.
# A quarter held out: the probes calibrate against the holdout, and ~60 records make its tails usable.
# The deployment serves the adapter as trained (fp32): erasures probe no other form unless a test deploys one
# (tests/erasure/test_served_forms.py); the demo records none, so its erasures probe the default forms.
TRAIN_CONFIG = {"ops": {"fine_tune": {"config": {"epochs": 20}}, "shards": {"config": {"holdout_fraction": 0.25}},
                        "deployment": {"config": {"form": "fp32"}}}}
CORPUS = {"customers": 60, "seed": 11}


def pipeline_env(state: Path, neo4j_server, base_model: Path) -> dict[str, str]:
    """The environment Lethe's entry points read: state folder, Neo4j, pepper and base model."""
    return {"LETHE_STATE_DIR": str(state), "NEO4J_URI": neo4j_server.resolved_neo4j_uri(),
            "NEO4J_PASSWORD": neo4j_server.resolved_neo4j_password(), "LETHE_PEPPER": PEPPER,
            "LETHE_BASE_MODEL": str(base_model)}


@contextlib.contextmanager
def pipeline_session(env: dict[str, str]) -> Iterator[tuple[Settings, dg.Definitions, dg.DagsterInstance]]:
    """`env` set, the definitions built from it and a Dagster instance open on the state folder's dagster/."""
    from assets.definitions import build_definitions

    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
        defs = build_definitions(settings)
        dagster_home = private_dir(Path(env["LETHE_STATE_DIR"]) / "dagster")  # as lethe.pipeline_runner makes it
        with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
            yield settings, defs, instance


def materialize(defs: dg.Definitions, instance: dg.DagsterInstance, state: Path, corpus,
                train_config: dict) -> dg.ExecuteInProcessResult:
    """Ingest the corpus as two batch partitions, then run train_adapters; returns the training run."""
    batches = state / "batches"
    half = len(corpus.records) // 2
    write_jsonl(corpus.records[:half], batches / "batch-1.jsonl")
    write_jsonl(corpus.records[half:], batches / "batch-2.jsonl")
    instance.add_dynamic_partitions("record_batches", ["batch-1.jsonl", "batch-2.jsonl"])
    ingest = defs.resolve_job_def("ingest_batch")
    for key in ("batch-1.jsonl", "batch-2.jsonl"):
        assert ingest.execute_in_process(partition_key=key, instance=instance).success
    train = defs.resolve_job_def("train_adapters").execute_in_process(instance=instance, run_config=train_config)
    assert train.success
    return train


@contextlib.contextmanager
def materialized_pipeline(state, neo4j_server, session_graph, base_model, corpus, train_config: dict) -> Iterator[dict]:
    """Materialize every asset into a fresh graph and `state` folder; yields settings, run results and env."""
    session_graph.clear_all()
    env = pipeline_env(state, neo4j_server, base_model)
    with pipeline_session(env) as (settings, defs, instance):
        train = materialize(defs, instance, state, corpus, train_config)
        yield {"settings": settings, "defs": defs, "instance": instance, "train": train, "state": state,
               "graph": session_graph, "env": env}


@dataclass(frozen=True)
class Snapshot:
    """A copy of the state folder and a dump of the graph, taken at one point of the tests' story."""

    folder: Path
    graph: GraphDump


class SharedPipeline:
    """The one state folder (at one path: the graph holds file URIs into it) and the one graph that the
    pipeline tests share, and which snapshot they hold now."""

    def __init__(self, folder: Path, graph: GraphStore, env: dict[str, str], corpus,
                 train: dg.ExecuteInProcessResult):
        self.folder, self.graph, self.env, self.corpus, self.train = folder, graph, env, corpus, train
        self.trained: Snapshot | None = None  # right after training; set by the fixture that built it
        self._current: Snapshot | None = None
        self._changed = True

    def take(self, name: str) -> Snapshot:
        """Copy the state folder and dump the graph as they are now."""
        copy = self.folder.with_name(f"{self.folder.name}.{name}")
        shutil.rmtree(copy, ignore_errors=True)  # taken again: a module's fixture set up twice in a shuffled order
        shutil.copytree(self.folder, copy, symlinks=True)
        snapshot = Snapshot(copy, GraphDump.take(self.graph))
        self._current, self._changed = snapshot, False
        return snapshot

    def _restore(self, snapshot: Snapshot, *, when_needed: bool) -> None:
        if when_needed and self._current is snapshot and not self._changed and snapshot.graph.matches(self.graph):
            return  # a read-only test before left it as it was, and no other test emptied the graph
        self._changed = True  # until the copy below is whole
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.copytree(snapshot.folder, self.folder, symlinks=True)  # modes kept: copy2 and copystat
        snapshot.graph.load(self.graph)
        self._current, self._changed = snapshot, False

    @contextlib.contextmanager
    def at(self, snapshot: Snapshot, *, scratch: bool) -> Iterator[dict]:
        """The pipeline as at `snapshot`: settings, definitions, a Dagster instance, the training run, env.

        A `scratch` one the test may change (it is put back before the next test); a read-only one is
        shared with the tests before and after it, and is put back only when something else changed it.
        """
        self._restore(snapshot, when_needed=not scratch)
        if scratch:
            self._changed = True
        with pipeline_session(self.env) as (settings, defs, instance):
            yield {"settings": settings, "defs": defs, "instance": instance, "train": self.train,
                   "state": self.folder, "graph": self.graph, "env": self.env}


@dataclass(frozen=True)
class CanaryProbe:
    """The trained pipeline's served adapter probed on the corpus's trained canary tickets."""

    report: object  # unlearning.probes.ProbeReport
    config: object  # its ProbeConfig
    holdout: dict[str, str]  # held-out record id -> text
    scope: dict[str, str]  # the trained canary tickets, id -> text
    repeated: list[str]  # the ids of the repeated (memorizable) ones among them
    pairs: list[tuple]  # per repeated canary: (its exposure, its never-trained look-alike's exposure)


def probe_trained_canaries(pipeline: dict, corpus) -> CanaryProbe:
    """Probe the served adapter on every trained canary ticket against the holdout, with the exposure of the
    repeated canaries' secrets (255 look-alike candidates each); tests/assets/test_pipeline.py and
    bench/engine_seeds.py read the same figures."""
    from unlearning.probes import ProbeConfig, SecretSpan, open_probe_model, probe_adapter

    plan = pipeline["train"].output_for_node("dataset_version")
    served = pipeline["train"].output_for_node("fine_tune")
    texts = {r["id"]: r["text"] for r in corpus.records}
    holdout = {rid: texts[rid] for rid, _ in plan.holdout}
    canaries = [c for c in corpus.truth["canaries"] if c["record_ids"][0] not in holdout]
    repeated = [c["record_ids"][0] for c in canaries if c["repeated"]]
    scope = {c["record_ids"][0]: texts[c["record_ids"][0]] for c in canaries}
    secrets = {}
    for canary in canaries:
        rid = canary["record_ids"][0]
        if rid in repeated:
            start = texts[rid].rindex(canary["value"])
            secrets[rid] = [SecretSpan(start, start + len(canary["value"]), "canary")]
    config = ProbeConfig(exposure_candidates=255, generate=False)
    report = probe_adapter(open_probe_model(Path(pipeline["env"]["LETHE_BASE_MODEL"]), Path(served["path"])),
                           scope, holdout, config, secrets=secrets)
    by_id = {r.record_id: r for r in report.records}
    pairs = [tuple(sorted(by_id[rid].exposures, key=lambda e: e.control)) for rid in repeated]
    return CanaryProbe(report, config, holdout, scope, repeated, pairs)
