"""OpenLineage events of Lethe's runs: dataset versions, fine-tunes, adapters and deployments.

`LineageEmitter` reads the graph after a write commits and sends START/COMPLETE (or FAIL) events through
the openlineage-python client; `events` builds them (pure) and `facts` reads what they say from Neo4j.
"""

from lethe.openlineage.emitter import LineageEmitter, transport_configured
from lethe.openlineage.events import FACETS_SCHEMA_URL, PRODUCER, LetheDatasetFacet, LetheRunFacet, run_uuid
from lethe.openlineage.facts import FactsError

__all__ = ["FACETS_SCHEMA_URL", "PRODUCER", "FactsError", "LetheDatasetFacet", "LetheRunFacet", "LineageEmitter",
           "run_uuid", "transport_configured"]
