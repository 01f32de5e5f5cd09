"""The Neo4j side of `lineage`: the only package that imports the neo4j driver."""

from lineage.store.graph import GraphStore

__all__ = ["GraphStore"]
