"""Whom the generation probes prompt: the people judged (a request's subject) and held-out people.

A person's identifiers are read back from their own records by their subject keys (erasure.identity's
`recover_values`), and their secrets are the codes and numbers Presidio finds in those records. A
continuation gives them away when Presidio, with those identifiers as deny lists, keys one of them in
it, or when one of their needles (lineage.pii.identity_match: format-agnostic, strong forms only) is in
it. Values live in memory for the probe only: what leaves is counts (unlearning.probes.extraction).

Held-out people are the owners of the dataset version's calibration records (held out, sharing no person
with what it trained on): the same prompts for them give the chance rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from erasure.context import ErasureContext
from erasure.identity import recover_values
from lineage.content_store import ContentStore
from lineage.pii.identity_match import NeedleSet, identifier_needles, secret_needle
from lineage.store import queries

__all__ = ["Person", "extraction_plan", "holdout_people", "owners_as_person", "people_of_requests",
           "remedy_extraction_plan", "subject_kinds"]

NAME_KINDS = ("name", "email")  # what fills an identity prompt, in this order


@dataclass(frozen=True)
class Person:
    """Someone to prompt: a label for the report (a request id, or a held-out person's key prefix), their
    records and their subject keys (key -> kind)."""

    label: str
    record_ids: tuple[str, ...]
    keys: Mapping[str, str]


@lru_cache(maxsize=1)
def _secret_finder():
    from lineage.pii.secrets import SecretFinder

    return SecretFinder()


def _finder(scanner, needles: NeedleSet, keys: set[str]):
    """Per text, the person's hits: (kind, key) of what Presidio keyed and of their identifiers' needles (every
    spelling of one identifier is one hit: a prompt's "Ada Quist" makes "Quist, Ada" no leak), (kind, value)
    of their secrets."""
    def find(texts: list[str]) -> list[set[tuple]]:
        out = []
        for text, result in zip(texts, scanner.scan(texts)):
            hits = {(m.kind, m.key) for m in result.mentions if m.key in keys}
            hits |= {(n.kind, n.key or n.reduced) for n in needles.found(text) if n.strong}
            out.append(hits)
        return out

    return find


def _values(ctx: ErasureContext, content: ContentStore, person: Person) -> dict[str, tuple[str, str]]:
    """key -> (kind, plain value) of the person's identifiers found in their records (in memory only)."""
    found = recover_values(content, ctx.record_batches_dir, ctx.keyer, dict(person.keys), person.record_ids)
    return {key: (person.keys[key], value) for key, (value, _) in found.items()}


def _needles(texts: Mapping[str, str],
             values: Mapping[str, tuple[str, str]]) -> tuple[NeedleSet, dict[str, list[int]]]:
    """The person's needles (identifiers, and the secrets Presidio finds in their records), and where each
    record's secrets start (their contexts are prompts)."""
    needles = [n for key, (kind, value) in values.items() for n in identifier_needles(kind, value, key)]
    ids, starts = list(texts), {}
    for rid, spans in zip(ids, _secret_finder().find([texts[i] for i in ids])):
        needles += [n for s in spans if (n := secret_needle(texts[rid][s.start:s.end]))]
        starts[rid] = [s.start for s in spans]
    return NeedleSet(needles), starts


def _prompt_ends(content: ContentStore, ids: Sequence[str]) -> dict[str, int]:
    """Chat records: where the first assistant turn starts (their prompt is the user turns before it)."""
    ends = {}
    for rid, turns in content.turns(list(ids)).items():
        starts = [t.start for t in turns if t.role == "assistant"]
        if starts:
            ends[rid] = min(starts)
    return ends


def _names(values: Mapping[str, tuple[str, str]]) -> tuple[str, ...]:
    for wanted in NAME_KINDS:
        found = sorted(value for kind, value in values.values() if kind == wanted)
        if found:
            return tuple(found[:1])
    return ()


def _prompts_for(ctx: ErasureContext, content: ContentStore, people: Sequence[Person]):
    from unlearning.probes.extraction import PersonPrompts

    out = []
    values_of = {p.label: _values(ctx, content, p) for p in people}
    scanner = _scanner(ctx, [kv for values in values_of.values() for kv in values.values()])
    for person in people:
        values = values_of[person.label]
        texts = content.get_many(list(person.record_ids))
        needles, starts = _needles(texts, values)
        out.append(PersonPrompts(person.label, texts, _names(values), _finder(scanner, needles, set(person.keys)),
                                 _prompt_ends(content, list(texts)), starts, identity=tuple(sorted(person.keys))))
    return tuple(out)


def _scanner(ctx: ErasureContext, known: list[tuple[str, str]]):
    """Presidio with every prompted person's identifiers as deny lists (keys reported, values kept inside)."""
    from lineage.pii import PiiScanner

    return PiiScanner(ctx.keyer, known=known)


def subject_kinds(ctx: ErasureContext, keys) -> dict[str, str]:
    """key -> identifier kind of the graph's Subject nodes among `keys`."""
    rows = ctx.graph.read("MATCH (s:Subject) WHERE s.key IN $keys RETURN s.key AS key, s.kind AS kind",
                          keys=sorted(keys))
    return {row["key"]: row["kind"] for row in rows}


def owners_as_person(ctx: ErasureContext, label: str, record_ids: Sequence[str]) -> Person:
    """The records' owners taken as one person (`lethe probe`: records named by id, not by a request)."""
    owners = queries.record_owners(ctx.graph, list(record_ids))
    return Person(label, tuple(record_ids), subject_kinds(ctx, {k for keys in owners.values() for k in keys}))


def holdout_people(ctx: ErasureContext, holdout_ids: Sequence[str], limit: int) -> list[Person]:
    """Up to `limit` owners of the held-out records (by key order, so every probe picks the same people),
    each with their held-out records and their keys."""
    owners = queries.record_owners(ctx.graph, list(holdout_ids))
    records: dict[str, list[str]] = {}
    for rid in holdout_ids:
        keys = owners.get(rid) or []
        if keys:
            records.setdefault(min(keys), []).append(rid)
    chosen = sorted(records)[:limit]
    kinds = subject_kinds(ctx, {k for person in chosen for rid in records[person] for k in owners[rid]})
    return [Person(f"holdout:{person[:12]}", tuple(records[person]),
                   {k: kinds[k] for rid in records[person] for k in owners[rid] if k in kinds}) for person in chosen]


def extraction_plan(ctx: ErasureContext, people: Sequence[Person], holdout_ids: Sequence[str], config,
                    family: int = 1, search: bool = True):
    """The plan of an extraction test (unlearning.probes.extraction): the people judged, held-out people
    for the chance rate, the sentence embedder (with `search`); None when generation is off. `family`: the
    extraction tests the caller makes (people x forms), over which alpha is shared."""
    from unlearning.probes.extraction import EmbedOnce, ExtractionPlan
    from unlearning.search import MiniLMEmbedder

    if not config.generate or not people:
        return None
    content = ctx.open_content()
    try:
        judged = _prompts_for(ctx, content, people)
        held = _prompts_for(ctx, content, holdout_people(ctx, holdout_ids, config.holdout_people))
    finally:
        content.close()
    embed = EmbedOnce(MiniLMEmbedder().encode) if search else None
    return ExtractionPlan(judged, held, embed=embed, family=max(1, family))


def people_of_requests(ctx: ErasureContext, requests: Mapping[str, tuple[Sequence[str], Mapping[str, str]]],
                       trained: set[str]) -> list[Person]:
    """One person per request (label: the request id): their scope records the adapter trained on, and the
    keys of their identity."""
    return [Person(label, tuple(r for r in records if r in trained), dict(keys))
            for label, (records, keys) in requests.items() if any(r in trained for r in records)]


def remedy_extraction_plan(ctx: ErasureContext, people, scope: Sequence[str], holdout: Sequence[str],
                           probe_config, others: int):
    """The extraction plan of a remedy's probes: one person per request (`people`: request id -> (scope ids,
    keys)), or the owners of the records as one person; alpha shared over people x (1 + `others`: the served
    forms and shard adapters prompted besides the adapter as trained)."""
    judged = people_of_requests(ctx, people, set(scope)) if people else [owners_as_person(ctx, "records", scope)]
    return extraction_plan(ctx, judged, list(holdout), probe_config, family=len(judged) * (1 + others))
