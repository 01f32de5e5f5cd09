"""The graph's vocabulary as pydantic models: node kinds with their keys, edge kinds with their ends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field
from lineage.errors import InvalidValueError

SHA256_HEX = r"^[0-9a-f]{64}$"


class Node(BaseModel):
    """A graph node; `label` and `key_property` name its Neo4j label and unique key property."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: ClassVar[str]
    key_property: ClassVar[str] = "id"
    # Immutable nodes are written once (a rerun changes nothing); mutable ones take updates.
    mutable: ClassVar[bool] = False


class RecordState(StrEnum):
    ACTIVE = "active"
    ERASED = "erased"


class AdapterState(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    QUARANTINED = "quarantined"
    DELETED = "deleted"


class RequestStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"
    REJECTED = "rejected"


class Subject(Node):
    """A person, known only by the keyed HMAC of one normalized identifier."""

    label = "Subject"
    key_property = "key"
    key: str = Field(pattern=SHA256_HEX)
    kind: str


class Record(Node):
    """A training record: the graph keeps its hash and where its content lives, never the text."""

    label = "Record"
    id: str = Field(min_length=1, max_length=512)
    content_sha256: str = Field(pattern=SHA256_HEX)
    source: str
    created_at: datetime | None = None
    content_ref: str | None = None
    state: RecordState = RecordState.ACTIVE
    erased_at: datetime | None = None


class Shard(Node):
    """A content-addressed group of records: id = Merkle root of its sorted record hashes."""

    label = "Shard"
    id: str = Field(pattern=SHA256_HEX)
    record_count: int = Field(ge=0)


class DatasetVersion(Node):
    """A set of shards, its manifest root and the root of its calibration holdout."""

    label = "DatasetVersion"
    id: str
    name: str
    manifest_root: str = Field(pattern=SHA256_HEX)
    holdout_root: str = Field(pattern=SHA256_HEX)
    created_at: datetime


class FineTuneRun(Node):
    label = "FineTuneRun"
    id: str
    base_model: str
    base_model_sha256: str
    config_sha256: str
    seed: int
    code_version: str
    started_at: datetime
    ended_at: datetime | None = None


class Adapter(Node):
    label = "Adapter"
    mutable = True
    id: str
    sha256: str
    uri: str
    state: AdapterState = AdapterState.ACTIVE


class Deployment(Node):
    label = "Deployment"
    mutable = True
    id: str
    endpoint: str
    form: str | None = None  # the form it serves (unlearning.forms: fp32, bf16, int8, 4bit-nf4, ...); None: not said


class ErasureRequest(Node):
    label = "ErasureRequest"
    mutable = True
    id: str
    regime: str
    received_at: datetime
    due_at: datetime
    status: RequestStatus = RequestStatus.OPEN


class Attestation(Node):
    label = "Attestation"
    id: str
    envelope_sha256: str = Field(pattern=SHA256_HEX)
    log_index: int = Field(ge=0)


NODE_KINDS: dict[str, type[Node]] = {
    cls.label: cls
    for cls in (Subject, Record, Shard, DatasetVersion, FineTuneRun, Adapter, Deployment,
                ErasureRequest, Attestation)
}


class EdgeKind(BaseModel):
    """One relationship type between two labels (the only strings ever spliced into Cypher)."""

    model_config = ConfigDict(frozen=True)
    type: str
    source: str
    target: str


EDGE_KINDS: dict[str, EdgeKind] = {
    e.type: e
    for e in (
        EdgeKind(type="OWNS", source="Subject", target="Record"),
        EdgeKind(type="MENTIONS", source="Record", target="Subject"),
        EdgeKind(type="IN", source="Record", target="Shard"),
        EdgeKind(type="PART_OF", source="Shard", target="DatasetVersion"),
        EdgeKind(type="HELD_OUT", source="Record", target="DatasetVersion"),
        EdgeKind(type="DERIVED_FROM", source="DatasetVersion", target="DatasetVersion"),
        EdgeKind(type="TRAINED_ON", source="FineTuneRun", target="Shard"),
        EdgeKind(type="PRODUCED", source="FineTuneRun", target="Adapter"),
        EdgeKind(type="MERGED_INTO", source="Adapter", target="Adapter"),
        EdgeKind(type="REPLACES", source="Adapter", target="Adapter"),
        EdgeKind(type="DEPLOYED_TO", source="Adapter", target="Deployment"),
        EdgeKind(type="TARGETS", source="ErasureRequest", target="Subject"),
        EdgeKind(type="SCOPES", source="ErasureRequest", target="Record"),
        EdgeKind(type="AFFECTS", source="ErasureRequest", target="Adapter"),
        EdgeKind(type="FOR", source="Attestation", target="ErasureRequest"),
    )
}


class Edge(BaseModel):
    """One relationship to write: the keys of both ends and optional properties."""

    model_config = ConfigDict(frozen=True)
    source: str
    target: str
    props: dict[str, str | int | float | bool] = Field(default_factory=dict)


def kind_of(nodes: Sequence[Node], writer: str) -> type[Node]:
    """The one node kind of a write call (writers take one kind per call, like one `MERGE` label)."""
    kind = type(nodes[0])
    if any(type(n) is not kind for n in nodes):
        raise TypeError(f"{writer}.nodes takes nodes of one kind per call")
    return kind


def check_edge_type(type_: str) -> None:
    """Refuse an edge type outside the vocabulary (it would be spliced into Cypher or an importer header)."""
    if type_ not in EDGE_KINDS:
        raise InvalidValueError(f"unknown edge type {type_!r}; known: {', '.join(sorted(EDGE_KINDS))}")


def node_row(node: Node) -> dict:
    """A node's properties as a Cypher parameter row (datetimes kept as ISO strings)."""
    return node.model_dump(mode="json", exclude_none=True)
