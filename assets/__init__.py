"""Lethe's Dagster code location: records → PII scan → shards → dataset version → adapters."""
