import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lineage.merkle import EMPTY_ROOT, Manifest, NonInclusionProof, leaf_hash, node_hash


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written straight from the RFC (split at the largest power of two < n)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def digests(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def test_empty_root_is_sha256_of_nothing():
    assert Manifest.of([]).root == EMPTY_ROOT == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 100])
def test_root_matches_rfc6962(n):
    leaves = sorted(digests(n))
    assert Manifest.of(leaves).root == reference_root([bytes.fromhex(h) for h in leaves]).hex()


def test_root_ignores_order_and_repeats():
    hs = digests(10)
    assert Manifest.of(hs).root == Manifest.of(list(reversed(hs)) + hs[:3]).root


@given(st.integers(min_value=1, max_value=70), st.integers(min_value=0, max_value=10_000))
@settings(max_examples=60, deadline=None)
def test_every_leaf_proves_inclusion_and_every_gap_non_inclusion(n, salt):
    manifest = Manifest.of(digests(n, str(salt)))
    for leaf in manifest.leaves:
        assert manifest.inclusion_proof(leaf).verify(manifest.root)
    for absent in digests(5, f"absent{salt}"):
        proof = manifest.non_inclusion_proof(absent)
        assert proof.verify(manifest.root)


def test_proofs_fail_against_another_root_or_when_tampered():
    manifest, other = Manifest.of(digests(9)), Manifest.of(digests(10))
    leaf = manifest.leaves[4]
    proof = manifest.inclusion_proof(leaf)
    assert not proof.verify(other.root)
    tampered = type(proof)(proof.leaf, proof.index, proof.size, (("00" * 32),) + proof.path[1:])
    assert not tampered.verify(manifest.root)
    # Claiming a present leaf is absent must fail: its neighbours are not adjacent in the tree.
    forged = NonInclusionProof(leaf, len(manifest.leaves),
                               manifest.inclusion_proof(manifest.leaves[3]),
                               manifest.inclusion_proof(manifest.leaves[5]))
    assert not forged.verify(manifest.root)


def test_present_leaf_has_no_non_inclusion_proof():
    manifest = Manifest.of(digests(4))
    with pytest.raises(KeyError):
        manifest.non_inclusion_proof(manifest.leaves[0])
    with pytest.raises(KeyError):
        manifest.inclusion_proof(digests(1, "missing")[0])
