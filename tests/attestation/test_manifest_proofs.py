"""Our independent non-inclusion check agrees with the proofs `lineage.merkle` produces, and refuses forgeries."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from attestation import EvidenceError, NonInclusionProof, check_evidence, scope_root, verify_non_inclusion
from lineage.merkle import Manifest, merkle_root
from tests.attestation.attestation_fixtures import hashes, make_predicate, predicate_json


def _ours(lineage_proof) -> NonInclusionProof:
    return NonInclusionProof.model_validate_json(json.dumps(asdict(lineage_proof)))


@pytest.mark.parametrize("size", [0, 1, 2, 3, 5, 8, 13])
def test_lineage_proofs_verify_here_at_every_position(size):
    present = hashes("present", size)
    manifest = Manifest.of(present)
    sorted_leaves = sorted(present)
    # Absent hashes below, between and above every leaf.
    absent = ["0" * 63 + "1", "f" * 64] + [leaf[:-1] + ("0" if leaf[-1] != "0" else "1") for leaf in sorted_leaves]
    for target in absent:
        if target in manifest:
            continue
        theirs = manifest.non_inclusion_proof(target)
        assert theirs.verify(manifest.root)
        verify_non_inclusion(_ours(theirs), manifest.root, size)


def test_scope_root_matches_lineage():
    for n in (0, 1, 7):
        assert scope_root(hashes("s", n)) == merkle_root(hashes("s", n))


def _proof_dict(manifest: Manifest, target: str) -> dict:
    return json.loads(json.dumps(asdict(manifest.non_inclusion_proof(target))))


MANIFEST = Manifest.of(hashes("present", 9))
TARGET = next(t for t in hashes("absent", 50) if MANIFEST.leaves[3] < t < MANIFEST.leaves[4])


@pytest.mark.parametrize("forge", [
    lambda p: p.update(target=MANIFEST.leaves[3]),  # a present hash "proven" absent
    lambda p: p.update(right=None),  # drop a neighbour
    lambda p: p.update(left=p["right"]),  # not adjacent
    lambda p: p["left"].update(index=p["left"]["index"] + 1),
    lambda p: p["left"]["path"].__setitem__(0, "0" * 64),
    lambda p: p["right"].update(leaf=MANIFEST.leaves[5]),
    lambda p: p.update(size=p["size"] + 1),
    lambda p: p["right"].update(size=p["size"] + 1),
])
def test_forged_non_inclusion_proofs_are_refused(forge):
    proof = _proof_dict(MANIFEST, TARGET)
    forge(proof)
    with pytest.raises(EvidenceError):
        verify_non_inclusion(NonInclusionProof.model_validate_json(json.dumps(proof)), MANIFEST.root,
                             len(MANIFEST.leaves))


def test_a_proof_against_another_manifest_is_refused():
    proof = _ours(MANIFEST.non_inclusion_proof(TARGET))
    other = Manifest.of(hashes("present", 9) + ["0" * 64])
    with pytest.raises(EvidenceError):
        verify_non_inclusion(proof, other.root, len(other.leaves))


def test_empty_manifest_proof_needs_the_empty_root():
    proof = _ours(Manifest.of([]).non_inclusion_proof("a" * 64))
    verify_non_inclusion(proof, Manifest.of([]).root, 0)
    with pytest.raises(EvidenceError):
        verify_non_inclusion(proof, MANIFEST.root, 0)


def test_evidence_must_name_exactly_the_scope():
    value = predicate_json()
    unrelated = hashes("unrelated", 3)
    after = Manifest.of(hashes("retained", 20))
    # Valid proofs of absence, but of other hashes than the scope's: the scope root gives them away.
    value["manifests"][0]["non_inclusion"] = [_proof_dict(after, h) for h in unrelated]
    with pytest.raises(EvidenceError, match="not the scope root"):
        check_evidence(make_predicate(value))
    check_evidence(make_predicate())
