"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs, and their verification (pure functions).

Leaf hash SHA256(0x00 || entry), node hash SHA256(0x01 || left || right), the empty tree hashes to
SHA256(""). Proof generation follows RFC 9162 §2.1.3.1 (PATH) and §2.1.4.1 (PROOF/SUBPROOF);
verification follows §2.1.3.2 and §2.1.4.2 step by step.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from attestation.errors import ConsistencyError, InclusionError, ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """SHA256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes; the empty tree's root is SHA256("")."""
    if not leaf_hashes:
        return EMPTY_ROOT
    # Pairing level by level and promoting a lone last node is RFC 9162's split at the largest
    # power of two below n, without recursion.
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = paired + [level[-1]] if len(level) % 2 else paired
    return level[0]


def inclusion_path(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]): the audit path of leaf `index` in the tree of these leaves."""
    if not 0 <= index < len(leaf_hashes):
        raise ProofError(f"leaf index {index} is outside a tree of {len(leaf_hashes)} leaves")
    if len(leaf_hashes) == 1:
        return []
    k = _split(len(leaf_hashes))
    if index < k:
        return inclusion_path(leaf_hashes[:k], index) + [root_hash(leaf_hashes[k:])]
    return inclusion_path(leaf_hashes[k:], index - k) + [root_hash(leaf_hashes[:k])]


def consistency_path(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]): proof that the first `old_size` leaves form a prefix of these."""
    if not 0 <= old_size <= len(leaf_hashes):
        raise ProofError(f"old size {old_size} is outside 0..{len(leaf_hashes)}")
    if old_size in (0, len(leaf_hashes)):
        return []
    return _subproof(old_size, leaf_hashes, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root_hash(leaves)]
    k = _split(n)
    if m <= k:
        return _subproof(m, leaves[:k], complete) + [root_hash(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [root_hash(leaves[:k])]


def _check_hashes(hashes: Sequence[bytes], what: str, error: type[Exception] = ProofError) -> None:
    for i, h in enumerate(hashes):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise error(f"{what}[{i}] is not a {HASH_SIZE}-byte hash")


def root_from_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root that `path` proves for leaf hash `leaf` at `index` of `size` (RFC 9162 §2.1.3.2)."""
    _check_hashes([leaf], "leaf hash")
    _check_hashes(path, "inclusion path")
    if not 0 <= index < size:
        raise InclusionError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise InclusionError(f"the inclusion path is too long for index {index} in size {size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InclusionError(f"the inclusion path is too short for index {index} in size {size}")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> None:
    """Succeed if `path` proves leaf hash `leaf` at `index` under `root`; else InclusionError."""
    _check_hashes([root], "root")
    if root_from_inclusion(leaf, index, size, path) != root:
        raise InclusionError(f"the inclusion proof of leaf {index} in a tree of size {size} leads to another "
                             f"root than {root.hex()}: the entry, the proof or the checkpoint was changed")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       path: Sequence[bytes]) -> None:
    """Succeed if `path` proves the tree (old_size, old_root) a prefix of (new_size, new_root)."""
    _check_hashes([old_root, new_root], "root", ConsistencyError)
    _check_hashes(path, "consistency path", ConsistencyError)
    if old_size < 0 or new_size < old_size:
        raise ConsistencyError(f"a log cannot shrink: old size {old_size}, new size {new_size}")
    if old_size == new_size or old_size == 0:
        if path:
            raise ConsistencyError(f"the consistency proof from size {old_size} to {new_size} must be empty")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ConsistencyError("a tree of size 0 has the empty root SHA256(\"\")")
        if old_size == new_size and old_root != new_root:
            raise ConsistencyError(f"two checkpoints of size {old_size} name different roots: the log forked")
        return
    if not path:
        raise ConsistencyError(f"the consistency proof from size {old_size} to {new_size} is empty")
    path = list(path)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyError(f"the consistency proof from size {old_size} to {new_size} is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise ConsistencyError(f"the log at size {new_size} (root {new_root.hex()}) is not proven to extend "
                               f"the log at size {old_size} (root {old_root.hex()}): it was rewritten or "
                               "the proof was changed")
