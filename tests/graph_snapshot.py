"""Every node and relationship of the test graph, read once and written back before a test that needs them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from lineage.store import GraphStore

BATCH = 2000


def _name(text: str) -> str:
    """A label or relationship type as a Cypher identifier (they come from the graph itself)."""
    return "`" + text.replace("`", "``") + "`"


@dataclass(frozen=True)
class GraphDump:
    """Nodes (labels, properties) and relationships (type, ends, properties); ends by the elementIds they had."""

    nodes: list[dict]
    relationships: list[dict]

    @classmethod
    def take(cls, graph: GraphStore) -> GraphDump:
        nodes = graph.read("MATCH (n) RETURN elementId(n) AS id, labels(n) AS labels, properties(n) AS props")
        relationships = graph.read("MATCH (a)-[r]->(b) RETURN elementId(a) AS a, elementId(b) AS b, "
                                   "type(r) AS type, properties(r) AS props")
        return cls(nodes, relationships)

    def counts(self) -> tuple[int, int]:
        return len(self.nodes), len(self.relationships)

    def matches(self, graph: GraphStore) -> bool:
        """Whether the graph holds as many nodes and relationships as the dump: a cheap check that no other
        test emptied or refilled it (tests that change it say so, and get it written back)."""
        nodes = graph.read("MATCH (n) RETURN count(n) AS n")[0]["n"]
        relationships = graph.read("MATCH ()-[r]->() RETURN count(r) AS n")[0]["n"]
        return (nodes, relationships) == self.counts()

    def load(self, graph: GraphStore) -> None:
        """Empty the graph and write the dump into it (new elementIds; same labels, types and properties)."""
        graph.clear_all()
        by_labels: dict[tuple[str, ...], list[dict]] = defaultdict(list)
        for node in self.nodes:
            by_labels[tuple(sorted(node["labels"]))].append({"old": node["id"], "props": node["props"]})
        new_ids: dict[str, str] = {}
        for labels, rows in by_labels.items():
            label_text = "".join(":" + _name(label) for label in labels)
            query = (f"UNWIND $rows AS row CREATE (n{label_text}) SET n = row.props "
                     "RETURN row.old AS old, elementId(n) AS new")
            for start in range(0, len(rows), BATCH):
                for row in graph.execute(query, rows=rows[start:start + BATCH]):
                    new_ids[row["old"]] = row["new"]
        by_type: dict[str, list[dict]] = defaultdict(list)
        for rel in self.relationships:
            by_type[rel["type"]].append({"a": new_ids[rel["a"]], "b": new_ids[rel["b"]], "props": rel["props"]})
        for rel_type, rows in by_type.items():
            query = ("UNWIND $rows AS row MATCH (a) WHERE elementId(a) = row.a MATCH (b) WHERE elementId(b) = row.b "
                     f"CREATE (a)-[r:{_name(rel_type)}]->(b) SET r = row.props")
            for start in range(0, len(rows), BATCH):
                graph.execute(query, rows=rows[start:start + BATCH])
