from datetime import datetime, timezone

import pytest

from lineage.dataset import plan_dataset_version
from lineage.hashing import content_sha256
from lineage.merkle import Manifest

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def records(n: int) -> list[tuple[str, str]]:
    return [(f"r{i}", content_sha256(f"text {i}")) for i in range(n)]


def test_plan_is_deterministic_and_content_addressed():
    a = plan_dataset_version("d", records(500), NOW, shard_count=4, holdout_fraction=0.1, seed=3)
    b = plan_dataset_version("d", list(reversed(records(500))), NOW, shard_count=4, holdout_fraction=0.1, seed=3)
    assert a.version.id == b.version.id and [s.id for s in a.shards] == [s.id for s in b.shards]
    for shard in a.shards:
        assert shard.id == Manifest.of(h for _, h in shard.records).root
    assert a.version.manifest_root == a.manifest.root


def test_holdout_is_disjoint_sized_and_seeded():
    plan = plan_dataset_version("d", records(2000), NOW, holdout_fraction=0.05, seed=1)
    trained = {rid for s in plan.shards for rid, _ in s.records}
    held = {rid for rid, _ in plan.holdout}
    assert not trained & held and len(trained | held) == 2000
    assert 60 <= len(held) <= 140  # 5% of 2000 = 100, binomial sd ~10
    other = plan_dataset_version("d", records(2000), NOW, holdout_fraction=0.05, seed=2)
    assert {rid for rid, _ in other.holdout} != held


def test_a_record_keeps_its_shard_when_others_arrive():
    small = plan_dataset_version("d", records(100), NOW, holdout_fraction=0.0)
    large = plan_dataset_version("d", records(200), NOW, holdout_fraction=0.0)
    where = {rid: s.index for s in small.shards for rid, _ in s.records}
    assert all(where[rid] == s.index for s in large.shards for rid, _ in s.records if rid in where)


@pytest.mark.parametrize("kwargs, message", [
    ({"shard_count": 0}, "shard_count"),
    ({"holdout_fraction": 1.0}, "holdout_fraction"),
    ({"name": " "}, "name"),
])
def test_bad_options_are_refused(kwargs, message):
    args = {"name": "d", "records": records(10), "created_at": NOW, **kwargs}
    with pytest.raises(ValueError, match=message):
        plan_dataset_version(**args)


def test_empty_dataset_is_refused():
    with pytest.raises(ValueError, match="no records"):
        plan_dataset_version("d", [], NOW)


def test_copies_of_one_text_are_held_out_together_or_not_at_all():
    copies = [(f"copy{i}", content_sha256("the same ticket")) for i in range(50)]
    plan = plan_dataset_version("d", records(400) + copies, NOW, holdout_fraction=0.5, seed=4)
    held = {rid for rid, _ in plan.holdout}
    assert len(held & {rid for rid, _ in copies}) in (0, 50)


def _grouped(n_people: int = 80, per_person: int = 4):
    records = [(f"r{p:03d}-{i}", content_sha256(f"ticket {i} of person {p}")) for p in range(n_people)
               for i in range(per_person)]
    return records, {rid: f"person-{rid[1:4]}" for rid, _ in records}


def test_grouped_records_share_a_shard_and_are_held_out_by_person():
    records, groups = _grouped()
    plan = plan_dataset_version("d", records, NOW, 4, 0.25, 0, groups)
    shard_of = {rid: s.id for s in plan.shards for rid, _ in s.records}
    held = {rid for rid, _ in plan.holdout}
    for person in {g for g in groups.values()}:
        mine = [rid for rid, g in groups.items() if g == person]
        assert len({shard_of.get(rid) for rid in mine}) == 1  # all in one shard, or all held out (None)
        assert all(rid in held for rid in mine) or not any(rid in held for rid in mine)
    assert 0.1 < len(held) / len(records) < 0.4


def test_removing_one_person_changes_only_their_shard():
    from lineage.dataset import derive_without

    records, groups = _grouped()
    plan = plan_dataset_version("d", records, NOW, 4, 0.25, 0, groups)
    person = next(rid for s in plan.shards for rid, _ in s.records)[:4]
    removed = {rid for rid, _ in records if rid.startswith(person)}
    derived = derive_without(plan, removed, NOW)
    changed = [(a.id, b.id) for a, b in zip(plan.shards, derived.shards) if a.id != b.id]
    assert len(changed) == 1 and derived.version.id != plan.version.id
    assert not removed & {rid for s in derived.shards for rid, _ in s.records}
    assert derived.holdout == plan.holdout
