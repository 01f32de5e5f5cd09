"""What the erasure domain works with, handed in by the application shell (`lethe.wiring.erasure_context`).

The domain never reads settings or the environment: it receives the graph, the content store, the subject
keyer and the folders it writes, as Presidio's `AnalyzerEngine` receives its registry and NLP engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from erasure.errors import ConfigurationError
from lineage.content_store import ContentStore
from lineage.keys import SubjectKeyer
from lineage.store import GraphStore

__all__ = ["ErasureContext", "RemedyCommitted"]


@dataclass(frozen=True)
class RemedyCommitted:
    """What a remedy's lineage commit wrote: the new served adapter, the dataset version it now stands on
    (the derived one after a retrain; the old one after an approximate method, with `derived` False), and
    the deployments that serve it. Ids only."""

    adapter: str
    dataset_version: str
    derived: bool
    deployments: tuple[str, ...]


@dataclass(frozen=True)
class ErasureContext:
    """The collaborators and folders of one command or API call.

    The keyer is built on first use, so a command that never keys an identifier does not need the pepper;
    `open_content` opens the content store (the only place record texts are kept) for one caller to close.
    """

    graph: GraphStore
    state_dir: Path
    record_batches_dir: Path
    model_store_dir: Path
    base_model: Path | None
    load_keyer: Callable[[], SubjectKeyer] = field(repr=False)
    open_content: Callable[[], ContentStore] = field(repr=False)
    # Told after each remedy's lineage commits (the shell sends OpenLineage events); never fails the remedy.
    on_remedy_committed: Callable[[GraphStore, RemedyCommitted], None] | None = field(default=None, repr=False)

    @cached_property
    def keyer(self) -> SubjectKeyer:
        """The HMAC keyer under the deployment's pepper."""
        return self.load_keyer()

    @property
    def index_dir(self) -> Path:
        """Where the record embeddings' FAISS indexes are cached."""
        return self.state_dir / "indexes"

    def require_base_model(self) -> Path:
        """The base model's folder, or a clear error naming the setting when none is configured."""
        if self.base_model is None:
            raise ConfigurationError("set LETHE_BASE_MODEL to the base model the adapter was trained on")
        return self.base_model
