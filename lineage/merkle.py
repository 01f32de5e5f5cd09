"""RFC 6962 Merkle trees over sorted hashes: shard ids, manifest roots, (non-)inclusion proofs.

Leaves are SHA-256 digests given as hex. A manifest sorts and de-duplicates them, so a root names a
*set* of records and a non-inclusion proof is two adjacent leaves that bracket the absent hash.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from typing import Iterable
from lineage.errors import InvalidValueError


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA256(0x00 || leaf)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    # Pairing level by level and promoting a lone last node unchanged is exactly RFC 6962's
    # split at the largest power of two below n.
    level = [leaf_hash(x) for x in leaves]
    levels = [level]
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does `leaf` sit at `index` of a tree of `size` leaves with this root?"""
    if index >= size or index < 0:
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


@dataclass(frozen=True)
class InclusionProof:
    """A leaf, its index and audit path in a tree of `size` leaves."""

    leaf: str
    index: int
    size: int
    path: tuple[str, ...]

    def verify(self, root_hex: str) -> bool:
        """True when the proof leads to `root_hex`."""
        return verify_inclusion(
            bytes.fromhex(self.leaf), self.index, self.size, [bytes.fromhex(p) for p in self.path],
            bytes.fromhex(root_hex),
        )


@dataclass(frozen=True)
class NonInclusionProof:
    """The absent hash's neighbours in the sorted manifest (one is None at either end)."""

    target: str
    size: int
    left: InclusionProof | None
    right: InclusionProof | None

    def verify(self, root_hex: str) -> bool:
        """True when the neighbours are in the tree, adjacent, and bracket the target."""
        if self.size == 0:
            return root_hex == EMPTY_ROOT and self.left is None and self.right is None
        for proof in (self.left, self.right):
            if proof is not None and (proof.size != self.size or not proof.verify(root_hex)):
                return False
        if self.left is None and self.right is None:
            return False
        if self.left is None:
            return self.right.index == 0 and self.target < self.right.leaf
        if self.right is None:
            return self.left.index == self.size - 1 and self.left.leaf < self.target
        return self.right.index == self.left.index + 1 and self.left.leaf < self.target < self.right.leaf


@dataclass
class Manifest:
    """A sorted, de-duplicated set of SHA-256 hex digests and its RFC 6962 Merkle tree."""

    leaves: list[str]
    _levels: list[list[bytes]] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, hashes: Iterable[str]) -> "Manifest":
        """Build from any iterable of hex digests (order and repeats do not matter)."""
        leaves = sorted({h.lower() for h in hashes})
        for h in leaves:
            if len(h) != 64:
                raise InvalidValueError(f"manifest leaves are SHA-256 hex digests (64 chars), got {h!r}")
        return cls(leaves, _levels([bytes.fromhex(h) for h in leaves]) if leaves else [])

    @property
    def root(self) -> str:
        """The Merkle root (hex); the SHA-256 of the empty string for an empty manifest."""
        return self._levels[-1][0].hex() if self.leaves else EMPTY_ROOT

    def __contains__(self, digest: str) -> bool:
        i = bisect.bisect_left(self.leaves, digest.lower())
        return i < len(self.leaves) and self.leaves[i] == digest.lower()

    def inclusion_proof(self, digest: str) -> InclusionProof:
        """Audit path of a digest that is in the manifest; KeyError if it is not."""
        digest = digest.lower()
        index = bisect.bisect_left(self.leaves, digest)
        if index >= len(self.leaves) or self.leaves[index] != digest:
            raise KeyError(f"{digest} is not in this manifest")
        return self._proof_at(index)

    def non_inclusion_proof(self, digest: str) -> NonInclusionProof:
        """Proof that a digest is absent; KeyError if it is present."""
        digest = digest.lower()
        if digest in self:
            raise KeyError(f"{digest} is in this manifest; it has no non-inclusion proof")
        i = bisect.bisect_left(self.leaves, digest)
        left = self._proof_at(i - 1) if i > 0 else None
        right = self._proof_at(i) if i < len(self.leaves) else None
        return NonInclusionProof(digest, len(self.leaves), left, right)

    def _proof_at(self, index: int) -> InclusionProof:
        path, i = [], index
        for level in self._levels[:-1]:
            sibling = i ^ 1
            if sibling < len(level):
                path.append(level[sibling].hex())
            i //= 2
        return InclusionProof(self.leaves[index], index, len(self.leaves), tuple(path))


def merkle_root(hashes: Iterable[str]) -> str:
    """Root of the manifest of these digests."""
    return Manifest.of(hashes).root
