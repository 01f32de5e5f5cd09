"""Non-inclusion proofs against sorted-leaf RFC 6962 manifests, checked independently of `lineage`.

A manifest is the Merkle tree of a dataset version's sorted, de-duplicated record hashes (leaf
bytes = the 32 raw digest bytes). A hash is absent when two leaves adjacent in the tree bracket
it, or the first leaf is above it, or the last below it. The format is the one `lineage.merkle`
writes (`dataclasses.asdict` of its NonInclusionProof); this re-implementation lets an auditor
check it without the rest of Lethe. Soundness rests on the manifest being sorted, which anyone
holding the manifest file can confirm by recomputing its root.
"""

from __future__ import annotations

from typing import Iterable

from attestation.errors import EvidenceError, ProofError
from attestation.merkle import EMPTY_ROOT, leaf_hash, root_from_inclusion, root_hash
from attestation.schema import Count, Sha256Hex, StrictModel


class LeafProof(StrictModel):
    """A manifest leaf (hex digest), its index, the tree size, and its audit path (hex)."""

    leaf: Sha256Hex
    index: Count
    size: Count
    path: list[Sha256Hex]


class NonInclusionProof(StrictModel):
    """The absent `target`'s neighbours in a manifest of `size` leaves (None past either end)."""

    target: Sha256Hex
    size: Count
    left: LeafProof | None
    right: LeafProof | None


def _leaf_root(proof: LeafProof) -> bytes:
    try:
        return root_from_inclusion(leaf_hash(bytes.fromhex(proof.leaf)), proof.index, proof.size,
                                   [bytes.fromhex(p) for p in proof.path])
    except ProofError as exc:
        raise EvidenceError(f"the neighbour {proof.leaf} at index {proof.index}: {exc}") from exc


def verify_non_inclusion(proof: NonInclusionProof, root_hex: str, size: int) -> None:
    """Succeed if `proof` shows its target absent from the manifest (root_hex, size); else EvidenceError."""
    where = f"non-inclusion proof of {proof.target} against manifest {root_hex} (size {size})"
    if proof.size != size:
        raise EvidenceError(f"{where}: the proof is for a manifest of size {proof.size}")
    if size == 0:
        if root_hex != EMPTY_ROOT.hex() or proof.left is not None or proof.right is not None:
            raise EvidenceError(f"{where}: an empty manifest has root SHA256(\"\") and no neighbours")
        return
    neighbours = [p for p in (proof.left, proof.right) if p is not None]
    if not neighbours:
        raise EvidenceError(f"{where}: a non-empty manifest needs at least one neighbour")
    for neighbour in neighbours:
        if neighbour.size != size:
            raise EvidenceError(f"{where}: neighbour {neighbour.leaf} is proven in a tree of size "
                                f"{neighbour.size}")
        if _leaf_root(neighbour).hex() != root_hex:
            raise EvidenceError(f"{where}: neighbour {neighbour.leaf} is not in this manifest (its path "
                                "leads to another root): the evidence or the manifest root was changed")
    left, right = proof.left, proof.right
    if left is None:
        bracketed = right.index == 0 and proof.target < right.leaf
    elif right is None:
        bracketed = left.index == size - 1 and left.leaf < proof.target
    else:
        bracketed = right.index == left.index + 1 and left.leaf < proof.target < right.leaf
    if not bracketed:
        raise EvidenceError(f"{where}: the neighbours are not adjacent leaves on either side of the target, "
                            "so they do not prove it absent")


def scope_root(record_hashes: Iterable[str]) -> str:
    """Hex RFC 6962 root of the sorted, de-duplicated hashes (as `lineage.merkle.merkle_root`)."""
    leaves = sorted(set(record_hashes))
    return root_hash([leaf_hash(bytes.fromhex(h)) for h in leaves]).hex()
