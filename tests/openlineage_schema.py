"""Validating OpenLineage events offline: the vendored spec (tests/data/openlineage) and Lethe's facet schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs

from lethe.openlineage import FACETS_SCHEMA_URL

SPEC = Path(__file__).resolve().parent / "data" / "openlineage"
FACET_FILE = Path(__file__).resolve().parents[1] / "lethe" / "openlineage" / "lethe-facets.json"
CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


def _registry() -> jsonschema_rs.Registry:
    core = json.loads((SPEC / "OpenLineage-2-0-2.json").read_text())
    resources = [(CORE, core),
                 # ErrorMessageRunFacet 1-0-0 refers to the 1-0-2 core's RunFacet, which 2-0-2 keeps as it was
                 # (allOf BaseFacet): see tests/data/openlineage/README.md.
                 ("https://openlineage.io/spec/1-0-2/OpenLineage.json",
                  {**core, "$id": "https://openlineage.io/spec/1-0-2/OpenLineage.json"}),
                 (FACETS_SCHEMA_URL, json.loads(FACET_FILE.read_text()))]
    for path in sorted((SPEC / "facets").glob("*.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], schema))
    return jsonschema_rs.Registry(resources)


REGISTRY = _registry()
# A facet's schema by its name in `facets`, as the client and Lethe stamp them; the `lethe` facets by _schemaURL.
FACET_SCHEMAS = {"jobType": "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
                 "errorMessage": "https://openlineage.io/spec/facets/1-0-0/ErrorMessageRunFacet.json"
                                 "#/$defs/ErrorMessageRunFacet"}


def validator(ref: str):
    return jsonschema_rs.validator_for({"$ref": ref}, registry=REGISTRY, validate_formats=True)


RUN_EVENT = validator(f"{CORE}#/$defs/RunEvent")
WHOLE_SPEC = validator(CORE)


def _facets(event: dict):
    """(name, facet) of every facet in an event: run, job, datasets, input and output facets."""
    yield from (event["run"].get("facets") or {}).items()
    yield from (event["job"].get("facets") or {}).items()
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        for key in ("facets", "inputFacets", "outputFacets"):
            yield from (dataset.get(key) or {}).items()


def assert_valid(event: dict) -> None:
    """The event against the spec's RunEvent and the whole spec, and each facet against its own schema."""
    RUN_EVENT.validate(event)
    WHOLE_SPEC.validate(event)
    for name, facet in _facets(event):
        if name == "lethe":
            assert facet["_schemaURL"].startswith(FACETS_SCHEMA_URL + "#/$defs/"), facet["_schemaURL"]
            validator(facet["_schemaURL"]).validate(facet)
        elif name in FACET_SCHEMAS:
            validator(FACET_SCHEMAS[name]).validate(facet)
