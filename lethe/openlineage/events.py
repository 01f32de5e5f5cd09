"""OpenLineage run events from Lethe's lineage facts (pure: no graph, no transport).

Jobs and datasets live in one namespace (`lethe://<instance>`); datasets are named `dataset_version/<id>`,
`base_model/<sha256 prefix>`, `adapter/<id>` and `deployment/<id>`. Records and shards stay in Neo4j: events
carry Merkle roots, digests and counts, never record ids, texts or subject keys.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import DatasetFacet, RunFacet, error_message_run, job_type_job

from lethe.openlineage.facts import DatasetVersionFacts, DeploymentFacts, FineTuneFacts
from lineage.training_runs import CODE_VERSION

__all__ = ["FACETS_SCHEMA_URL", "PRODUCER", "LetheDatasetFacet", "LetheRunFacet", "dataset_version_events",
           "deployment_events", "failure_events", "fine_tune_events", "run_uuid"]

# Lethe has no public home yet: `.example` (RFC 2606) marks these as names, not pages to fetch. The facet
# schema they name ships beside this module (lethe-facets.json); consumers treat the URL as the facet's identity.
PRODUCER = f"https://lethe.example/lethe/{CODE_VERSION}"
FACETS_SCHEMA_URL = "https://lethe.example/spec/facets/1-0-0/LetheFacets.json"
FACET = "lethe"  # the key of Lethe's facets in `facets`


@attr.define
class LetheDatasetFacet(DatasetFacet):
    """Content roots, digests and counts of a dataset Lethe made; never record ids."""

    kind: str
    manifestRoot: str | None = attr.field(default=None)  # noqa: N815 (the spec's camelCase)
    holdoutRoot: str | None = attr.field(default=None)  # noqa: N815
    shardCount: int | None = attr.field(default=None)  # noqa: N815
    trainingRecordCount: int | None = attr.field(default=None)  # noqa: N815
    heldOutRecordCount: int | None = attr.field(default=None)  # noqa: N815
    sha256: str | None = attr.field(default=None)
    state: str | None = attr.field(default=None)
    form: str | None = attr.field(default=None)
    _additional_skip_redact: ClassVar[list[str]] = ["kind", "manifestRoot", "holdoutRoot", "sha256"]

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA_URL}#/$defs/LetheDatasetFacet"


@attr.define
class LetheRunFacet(RunFacet):
    """How a fine-tune ran: code version, config and base model digests, seed, Lethe's run ids."""

    codeVersion: str  # noqa: N815
    configSha256: str | None = attr.field(default=None)  # noqa: N815
    baseModelSha256: str | None = attr.field(default=None)  # noqa: N815
    seed: int | None = attr.field(default=None)
    letheRunIds: list[str] | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA_URL}#/$defs/LetheRunFacet"


def run_uuid(namespace: str, job: str, key: str) -> str:
    """The OpenLineage runId of one of Lethe's runs: a UUID derived from its ids, the same on every emission."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}#{job}#{key}"))


def _job(namespace: str, name: str) -> Job:
    facet = job_type_job.JobTypeJobFacet(processingType="BATCH", integration="LETHE", jobType="ASSET",
                                         producer=PRODUCER)
    return Job(namespace=namespace, name=name, facets={"jobType": facet})


def _pair(namespace: str, job: str, run_id: str, started: datetime, ended: datetime,
          inputs: list[InputDataset], outputs: list[OutputDataset],
          run_facets: dict[str, RunFacet] | None = None) -> list[RunEvent]:
    """A START and a COMPLETE event of one run; the datasets ride on both (Marquez reads either)."""
    return [RunEvent(eventType=state, eventTime=at.isoformat(), producer=PRODUCER,
                     run=Run(runId=run_id, facets=dict(run_facets or {})), job=_job(namespace, job),
                     inputs=inputs, outputs=outputs)
            for state, at in ((RunState.START, started), (RunState.COMPLETE, ended))]


def _version_dataset(namespace: str, facts: DatasetVersionFacts) -> OutputDataset:
    facet = LetheDatasetFacet(kind="dataset_version", manifestRoot=facts.manifest_root,
                              holdoutRoot=facts.holdout_root, shardCount=facts.shard_count,
                              trainingRecordCount=facts.training_records, heldOutRecordCount=facts.held_out_records,
                              producer=PRODUCER)
    return OutputDataset(namespace=namespace, name=f"dataset_version/{facts.id}", facets={FACET: facet})


def dataset_version_events(namespace: str, facts: DatasetVersionFacts, completed_at: datetime) -> list[RunEvent]:
    """`lethe.dataset_version`: the parent version (if any) in, the new version with its roots out."""
    inputs = [InputDataset(namespace=namespace, name=f"dataset_version/{facts.parent_id}")] if facts.parent_id else []
    return _pair(namespace, "lethe.dataset_version", run_uuid(namespace, "lethe.dataset_version", facts.id),
                 facts.created_at, max(completed_at, facts.created_at), inputs, [_version_dataset(namespace, facts)])


def _adapter_facet(adapter) -> LetheDatasetFacet:
    return LetheDatasetFacet(kind="adapter", sha256=adapter.sha256, state=adapter.state, producer=PRODUCER)


def fine_tune_events(namespace: str, facts: FineTuneFacts) -> list[RunEvent]:
    """`lethe.fine_tune`: the dataset version and base model in, the served adapter (its digest) out."""
    base = InputDataset(namespace=namespace, name=f"base_model/{facts.base_model_sha256[:16]}",
                        facets={FACET: LetheDatasetFacet(kind="base_model", sha256=facts.base_model_sha256,
                                                         producer=PRODUCER)})
    inputs = [InputDataset(namespace=namespace, name=f"dataset_version/{facts.dataset_version_id}"), base]
    output = OutputDataset(namespace=namespace, name=f"adapter/{facts.adapter.id}",
                           facets={FACET: _adapter_facet(facts.adapter)})
    run_facet = LetheRunFacet(codeVersion=facts.code_version, configSha256=facts.config_sha256,
                              baseModelSha256=facts.base_model_sha256, seed=facts.seed,
                              letheRunIds=list(facts.run_ids), producer=PRODUCER)
    return _pair(namespace, "lethe.fine_tune", run_uuid(namespace, "lethe.fine_tune", ",".join(facts.run_ids)),
                 facts.started_at, facts.ended_at, inputs, [output], {FACET: run_facet})


def deployment_events(namespace: str, facts: DeploymentFacts, at: datetime) -> list[RunEvent]:
    """`lethe.deployment`: the adapters served in, the deployment (its form) out."""
    inputs = [InputDataset(namespace=namespace, name=f"adapter/{a.id}", facets={FACET: _adapter_facet(a)})
              for a in facts.adapters]
    output = OutputDataset(namespace=namespace, name=f"deployment/{facts.id}",
                           facets={FACET: LetheDatasetFacet(kind="deployment", form=facts.form, producer=PRODUCER)})
    key = f"{facts.id}:{','.join(a.id for a in facts.adapters)}"
    return _pair(namespace, "lethe.deployment", run_uuid(namespace, "lethe.deployment", key), at, at, inputs,
                 [output])


def failure_events(namespace: str, job: str, run_key: str, error: BaseException, at: datetime) -> list[RunEvent]:
    """A START and a FAIL for a run that wrote nothing. The message names the error's type only: exception
    texts can quote record ids or paths, and events leave Lethe."""
    run_id = run_uuid(namespace, job, run_key)
    facet = error_message_run.ErrorMessageRunFacet(
        message=f"{type(error).__name__}; the Dagster run {run_key} has the details",
        programmingLanguage="PYTHON", producer=PRODUCER)
    return [RunEvent(eventType=state, eventTime=at.isoformat(), producer=PRODUCER,
                     run=Run(runId=run_id, facets={"errorMessage": facet} if state is RunState.FAIL else {}),
                     job=_job(namespace, job))
            for state in (RunState.START, RunState.FAIL)]
