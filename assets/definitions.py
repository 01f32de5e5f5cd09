"""The one Dagster Definitions object of Lethe's code location (`dagster dev -m assets.definitions`)."""


import dagster as dg

from assets import checks
from assets.datasets import dataset_version, shards
from assets.erasure_job import erasure_job
from assets.erasure_sensor import make_erasure_sensor
from assets.records import pii_scan, raw_records, record_batches
from assets.resources import ModelStoreResource, Neo4jResource, OpenLineageResource, SourceStoreResource
from assets.sensors import make_batch_sensor
from assets.training import deployment, fine_tune
from lethe.settings import Settings
from lineage.local_files import restrict_umask

ingest_job = dg.define_asset_job("ingest_batch", selection=[raw_records, pii_scan])
train_job = dg.define_asset_job("train_adapters", selection=[shards, dataset_version, fine_tune, deployment])


def build_resources(settings: Settings) -> dict:
    """Resources from Lethe's settings; secrets are passed as EnvVar so the UI never shows them."""
    return {
        "neo4j": Neo4jResource(
            uri=settings.resolved_neo4j_uri(), user=settings.neo4j_user, database=settings.neo4j_database,
            password=dg.EnvVar("NEO4J_PASSWORD") if settings.neo4j_password else None,
            password_file=None if settings.neo4j_password else str((settings.local_server_dir / "password").resolve())),
        "source": SourceStoreResource(
            batches_dir=str(settings.record_batches_dir.resolve()),
            content_db=str(settings.content_store_path.resolve()),
            quarantine_dir=str(settings.quarantine_dir.resolve()),
            pepper=dg.EnvVar("LETHE_PEPPER") if settings.pepper else None,
            pepper_file=str(settings.pepper_file.resolve()) if settings.pepper_file else None),
        "models": ModelStoreResource(root=str(settings.model_store_dir.resolve()),
                                     base_model=str(settings.base_model.resolve()) if settings.base_model else None),
        "policy": checks.PolicyResource(),
        "openlineage": OpenLineageResource(namespace=settings.openlineage_namespace),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    """Assets, checks, jobs, sensors and resources for one environment. Whatever loads them (a code server,
    a run worker, a test) writes owner-only files from then on: the pipeline stores texts and keys."""
    restrict_umask()
    return dg.Definitions(
        assets=[raw_records, pii_scan, shards, dataset_version, fine_tune, deployment],
        asset_checks=[checks.no_erased_records, checks.no_open_erasure_requests, checks.adapter_matches_graph],
        jobs=[ingest_job, train_job, erasure_job],
        sensors=[make_batch_sensor(ingest_job, str(settings.record_batches_dir.resolve())),
                 make_erasure_sensor(erasure_job, str(settings.state_dir.resolve()))],
        resources=build_resources(settings),
    )


defs = build_definitions(Settings())
