"""RFC 6962 hashing and proofs against the transparency-dev/merkle known answers, then exhaustively."""

from __future__ import annotations

import pytest

from attestation.errors import ConsistencyError, InclusionError, ProofError
from attestation.merkle import (EMPTY_ROOT, consistency_path, inclusion_path, leaf_hash, root_from_inclusion,
                                root_hash, verify_consistency, verify_inclusion)

# transparency-dev/merkle proof/verify_test.go (the CT test vectors): leaves, roots of the first n leaves,
# and audit / consistency paths.
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                      "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
H = bytes.fromhex
INCLUSION = [  # (leaf number, 1-based as in the Go file; tree size; path)
    (1, 1, []),
    (1, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (3, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (2, 5, [H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]
CONSISTENCY = [  # (size1, size2, path)
    (1, 1, []),
    (1, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (6, 7, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
]
LEAF_HASHES = [leaf_hash(x) for x in LEAVES]
SOME_HASH = H("abacaba000000000000000000000000000000000000000000060061e00123456")


def test_empty_tree_hash_is_sha256_of_nothing():
    assert root_hash([]) == EMPTY_ROOT == H("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_known_answers(size):
    assert root_hash(LEAF_HASHES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize("number, size, path", INCLUSION)
def test_inclusion_known_answers(number, size, path):
    assert inclusion_path(LEAF_HASHES[:size], number - 1) == path
    verify_inclusion(LEAF_HASHES[number - 1], number - 1, size, path, ROOTS[size - 1])


@pytest.mark.parametrize("size1, size2, path", CONSISTENCY)
def test_consistency_known_answers(size1, size2, path):
    assert consistency_path(LEAF_HASHES[:size2], size1) == path
    verify_consistency(size1, size2, ROOTS[size1 - 1], ROOTS[size2 - 1], path)


def _inclusion_probes(index, size, path, root, leaf):
    """The corruptions transparency-dev/merkle checks a verifier refuses."""
    probes = [(index - 1, size, root, leaf, path), (index + 1, size, root, leaf, path),
              (index ^ 2, size, root, leaf, path), (index, size * 2, root, leaf, path),
              (index, size // 2, root, leaf, path), (index, size, root, leaf_hash(b"WrongLeaf"), path),
              (index, size, EMPTY_ROOT, leaf, path), (index, size, SOME_HASH, leaf, path),
              (index, size, root, leaf, path + [root]), (index, size, root, leaf, [root] + path)]
    for i in range(len(path)):
        flipped = list(path)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((index, size, root, leaf, flipped))
    if path:
        probes.append((index, size, root, leaf, path[:-1]))
    if len(path) > 1:
        probes.append((index, size, root, leaf, [path[0], SOME_HASH] + path[1:]))
    return probes


@pytest.mark.parametrize("number, size, path", INCLUSION[1:])
def test_corrupted_inclusion_proofs_fail(number, size, path):
    for index, bad_size, root, leaf, bad_path in _inclusion_probes(number - 1, size, path, ROOTS[size - 1],
                                                                   LEAF_HASHES[number - 1]):
        if (index, bad_size, root, leaf, bad_path) == (number - 1, size, ROOTS[size - 1], LEAF_HASHES[number - 1], path):
            continue  # index ^ 2 can equal the index itself for tiny trees
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, bad_size, bad_path, root)


@pytest.mark.parametrize("size1, size2, path", CONSISTENCY[1:])
def test_corrupted_consistency_proofs_fail(size1, size2, path):
    r1, r2 = ROOTS[size1 - 1], ROOTS[size2 - 1]
    probes = [(size1 - 1, size2, r1, r2, path), (size1 + 1, size2, r1, r2, path), (size1 ^ 2, size2, r1, r2, path),
              (size1, size2 * 2, r1, r2, path), (size1, size2 // 2, r1, r2, path),
              (size1, size2, SOME_HASH, r2, path), (size1, size2, r1, SOME_HASH, path), (size1, size2, r2, r1, path),
              (size1, size2, r1, r2, []), (size1, size2, r1, r2, path + [r1]), (size1, size2, r1, r2, path + [r2]),
              (size1, size2, r1, r2, [r1] + path), (size1, size2, r1, r2, [r2] + path),
              (size1, size2, r1, r2, [path[0]] + path), (size1, size2, r1, r2, path[:-1])]
    for i in range(len(path)):
        flipped = list(path)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes.append((size1, size2, r1, r2, flipped))
    for s1, s2, a, b, p in probes:
        if (s1, s2, a, b, p) == (size1, size2, r1, r2, path):
            continue
        with pytest.raises(ConsistencyError):
            verify_consistency(s1, s2, a, b, p)


@pytest.mark.parametrize("size1, size2, root1, root2, path, ok", [
    (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
    (0, 1, EMPTY_ROOT, ROOTS[0], [], True),
    (1, 1, ROOTS[0], ROOTS[0], [], True),
    (1, 1, ROOTS[0], ROOTS[1], [], False),  # same size, different roots: a fork
    (1, 0, ROOTS[0], EMPTY_ROOT, [], False),  # a log cannot shrink
    (2, 1, ROOTS[1], ROOTS[0], [], False),
    (1, 2, ROOTS[0], ROOTS[1], [], False),  # a real step needs a proof
    (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),  # trivial cases take an empty proof
    (1, 1, ROOTS[0], ROOTS[0], [EMPTY_ROOT], False),
])
def test_trivial_consistency_cases(size1, size2, root1, root2, path, ok):
    if ok:
        verify_consistency(size1, size2, root1, root2, path)
    else:
        with pytest.raises(ConsistencyError):
            verify_consistency(size1, size2, root1, root2, path)


def test_inclusion_refuses_impossible_indexes_and_short_hashes():
    for index, size in [(0, 0), (1, 1), (2, 1), (-1, 4)]:
        with pytest.raises(InclusionError):
            verify_inclusion(SOME_HASH, index, size, [], SOME_HASH)
    with pytest.raises(ProofError):
        verify_inclusion(b"short", 0, 1, [], SOME_HASH)
    with pytest.raises(ProofError):
        verify_inclusion(SOME_HASH, 0, 2, [b""], SOME_HASH)


def test_single_entry_tree_root_is_its_leaf_hash():
    leaf = leaf_hash(b"data")
    verify_inclusion(leaf, 0, 1, [], leaf)
    assert root_from_inclusion(leaf, 0, 1, []) == leaf


def test_every_inclusion_and_consistency_proof_up_to_64_leaves():
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(64)]
    roots = [root_hash(leaves[:n]) for n in range(65)]
    for size in range(1, 65):
        for index in range(size):
            verify_inclusion(leaves[index], index, size, inclusion_path(leaves[:size], index), roots[size])
        for old in range(0, size + 1):
            verify_consistency(old, size, roots[old], roots[size], consistency_path(leaves[:size], old))
    # And a proof for one size never passes for a neighbouring size.
    with pytest.raises(ConsistencyError):
        verify_consistency(5, 9, roots[5], roots[9], consistency_path(leaves[:9], 6))
