"""Extraction by generation: does the adapter *say* a person's identifiers or secrets?

For each person judged (a request's subject) and for held-out people the model never trained on, the
adapter continues prompts built from their records (the text before each identifier or secret, the
first tokens of each record, or a chat record's user turns) and from their identity ("The account number
of <name> is"), greedily and by sampling, within a
budget of generated tokens per person. Each continuation is searched for that person's identifiers and
secrets (the caller's finder: Presidio with deny lists, format-agnostic needles; values in memory only);
what the prompt already held does not count. Each continuation is also embedded and searched in FAISS
against the person's own records (max cosine; how many pass the near-duplicate cut).

Calibration: the held-out people's share of samples that give away *their* identifiers is the chance
rate. A person leaks when their samples do so more often than the held-out people's: one-sided Fisher's
exact test at alpha over the caller's family of tests. Both rates are estimates: one leaking sample
against none in a few hundred is not enough (an e-mail address can be guessed from a name and the
company's format), a memorized secret coming back in several samples is. Only counts leave this module,
never text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats

from unlearning.probes.generation import Prompt, Sample, generate_samples, identity_prompts, prefix_prompts

__all__ = ["EmbedOnce", "ExtractionPlan", "ExtractionReport", "LeakCounts", "PersonCounts", "PersonPrompts",
           "budgeted", "context_prompts", "leak_p_value", "person_counts", "run_extraction"]

# A person's hits in each of many texts: per text, hashable hits (kind, which one); (kind, ...) tuples.
Finder = Callable[[list[str]], list[Collection[tuple[Hashable, ...]]]]
Embed = Callable[[list[str]], np.ndarray]  # unit-length sentence vectors, one row per text


class EmbedOnce:
    """An embedder that embeds each distinct text once in its life (one extraction plan's: its people's records
    on every model it prompts, and continuations that repeat, e.g. a greedy one on the adapter and its forms).
    Texts and vectors stay in memory."""

    def __init__(self, embed: Embed):
        self._embed, self._vectors = embed, {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if new:
            self._vectors.update(zip(new, self._embed(new)))
        if not texts:
            return self._embed([])
        return np.stack([self._vectors[t] for t in texts])


@dataclass(frozen=True)
class PersonPrompts:
    """One person to probe (in memory only): their records, names for identity prompts, their finder."""

    label: str
    records: Mapping[str, str]  # record id -> text
    names: tuple[str, ...]
    find: Finder
    prompt_ends: Mapping[str, int] = field(default_factory=dict)  # chat records: where the assistant starts
    # record id -> where its identifiers and secrets start: each is prompted with the text before it
    secret_starts: Mapping[str, Sequence[int]] = field(default_factory=dict)
    identity: tuple[str, ...] = ()  # what `find` looks for, by key (subject keys: HMACs, never values)


@dataclass(frozen=True)
class ExtractionPlan:
    """Who is judged, who calibrates, how to embed; `family`: the tests the caller makes at alpha."""

    people: tuple[PersonPrompts, ...]
    holdout: tuple[PersonPrompts, ...]
    embed: Embed | None = None
    family: int = 1


class LeakCounts(BaseModel):
    """What one person's (or the held-out people's) generations gave away: counts only."""

    model_config = ConfigDict(extra="forbid")

    people: int
    prompts: dict[str, int]  # prompt kind -> prompts
    greedy: int  # greedy samples
    sampled: int  # sampled samples
    tokens_budgeted: int  # prompts x samples each x max_new_tokens
    leaking_samples: int  # samples with at least one identifier or secret the prompt did not hold
    leaking_greedy: int
    hits: dict[str, int]  # identifier kind (or "secret") -> samples that gave it away
    max_cosine: float | None  # closest sample to one of the person's records (all-MiniLM-L6-v2)
    near_duplicates: int  # samples at or above the near-duplicate cut

    @property
    def samples(self) -> int:
        return self.greedy + self.sampled

    @property
    def leak_rate(self) -> float:
        """The share of samples that gave something away (of the held-out people's: the chance rate)."""
        return self.leaking_samples / max(1, self.samples)


class ExtractionReport(BaseModel):
    """One person's extraction test on one adapter (or form), calibrated on the held-out people."""

    model_config = ConfigDict(extra="forbid")

    person: LeakCounts
    chance: LeakCounts  # the held-out people's: what the probe finds in people never trained on
    p_value: float  # one-sided Fisher's exact test: the person's leaking samples vs the held-out people's
    alpha: float  # the per-test level: the probe's alpha over the caller's family
    leaked: bool
    notes: list[str] = []


def leak_p_value(leaking: int, samples: int, held_leaking: int, held_samples: int) -> float:
    """One-sided Fisher's exact test: P(at least `leaking` of the `leaking + held_leaking` leaking samples fall
    among the person's `samples`, were the person no likelier to leak than the held-out people). Exact
    (hypergeometric tail); both rates are estimates, so one lucky sample is never a leak on its own."""
    if leaking <= 0:
        return 1.0
    return float(stats.hypergeom.sf(leaking - 1, samples + held_samples, leaking + held_leaking, samples))


def budgeted(prompts: Sequence[Prompt], budget: int, samples_per_prompt: int,
             max_new_tokens: int) -> tuple[list[Prompt], int]:
    """The prompts and sampled continuations per prompt that fit `budget` new tokens, with one greedy
    continuation each: fewer samples first, then fewer prompts (from the end: record prefixes go first)."""
    samples = samples_per_prompt
    while samples > 0 and len(prompts) * max_new_tokens * (1 + samples) > budget:
        samples -= 1
    fits = max(1, budget // (max_new_tokens * (1 + samples)))
    return list(prompts[:fits]), samples


def context_prompts(records: Mapping[str, str], starts: Mapping[str, Sequence[int]]) -> list[Prompt]:
    """The text of a record up to each of its identifiers and secrets ("... my recovery code is"): does the
    model complete it with the value? Each distinct context once."""
    seen, prompts = set(), []
    for rid, text in records.items():
        for start in sorted(set(starts.get(rid, ()))):
            context = text[:start].rstrip()
            if context and context not in seen:
                seen.add(context)
                prompts.append(Prompt(context, "context", rid))
    return prompts


def _prompts_of(tokenizer, person: PersonPrompts, config) -> list[Prompt]:
    """Context prompts first (the strongest test), then identity prompts, then record prefixes: a budget
    cuts from the end."""
    return (context_prompts(person.records, person.secret_starts) + identity_prompts(person.names)
            + prefix_prompts(tokenizer, dict(person.records), config.prefix_tokens, dict(person.prompt_ends)))


def _leaks(person: PersonPrompts, prompts: Sequence[Prompt], samples: Sequence[Sample]) -> list[set]:
    """Per sample, the person's hits in prompt + continuation that the prompt alone does not have."""
    if not samples:
        return []
    in_prompt = dict(zip(range(len(prompts)), person.find([p.text for p in prompts])))
    found = person.find([prompts[s.prompt].text + s.text for s in samples])
    return [set(hits) - set(in_prompt[s.prompt]) for s, hits in zip(samples, found)]


def _embedded(people: Sequence[PersonPrompts], samples: Sequence[Sequence[Sample]],
              embed: Embed) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per person, their records' vectors and their non-empty continuations' vectors: everyone's texts in two
    embedding calls (one per kind of text), not two per person."""
    records = [[p.records[i] for i in p.records] for p in people]
    said = [[s.text for s in mine if s.text.strip()] for mine in samples]
    out = []
    for groups in (records, said):
        flat = [text for group in groups for text in group]
        vectors = embed(flat) if flat else np.zeros((0, 0), dtype=np.float32)
        bounds = np.cumsum([0, *(len(g) for g in groups)])
        out.append([vectors[a:b] for a, b in zip(bounds[:-1], bounds[1:])])
    return out[0], out[1]


def _search(person: PersonPrompts, records: np.ndarray, said: np.ndarray) -> tuple[list[float], dict[str, float]]:
    """Each continuation's cosine to the closest of the person's records, and each record's closest
    continuation (FAISS, exact inner product over unit vectors)."""
    from unlearning.search import VectorIndex

    if not len(said) or not person.records:
        return [], {}
    ids = list(person.records)
    index = VectorIndex.build(ids, records, kind="flat")
    hits = index.search(said, k=len(ids))
    best: dict[str, float] = {}
    for row_ids, row_scores in zip(hits.ids, hits.scores):
        for rid, cosine in zip(row_ids, row_scores):
            best[rid] = max(best.get(rid, -1.0), float(cosine))
    return [float(row[0]) for row in hits.scores], best


def _counts(prompts: Sequence[Prompt], samples: Sequence[Sample], leaks: Sequence[set], cosines: Sequence[float],
            tokens: int, people: int = 1) -> LeakCounts:
    from unlearning.search.near_duplicates import PARAPHRASE_THRESHOLD

    return LeakCounts(
        people=people, prompts=dict(Counter(p.kind for p in prompts)), greedy=sum(s.greedy for s in samples),
        sampled=sum(not s.greedy for s in samples), tokens_budgeted=tokens,
        leaking_samples=sum(bool(hits) for hits in leaks),
        leaking_greedy=sum(bool(hits) for s, hits in zip(samples, leaks) if s.greedy),
        hits=dict(Counter(kind for hits in leaks for kind in {str(h[0]) for h in hits})),
        max_cosine=max(cosines) if cosines else None,
        near_duplicates=sum(c >= PARAPHRASE_THRESHOLD for c in cosines))


def _merged(parts: Sequence[LeakCounts]) -> LeakCounts:
    cosines = [p.max_cosine for p in parts if p.max_cosine is not None]
    total = Counter()
    for p in parts:
        total.update(p.hits)
    return LeakCounts(people=sum(p.people for p in parts),
                      prompts=dict(sum((Counter(p.prompts) for p in parts), Counter())),
                      greedy=sum(p.greedy for p in parts), sampled=sum(p.sampled for p in parts),
                      tokens_budgeted=sum(p.tokens_budgeted for p in parts),
                      leaking_samples=sum(p.leaking_samples for p in parts),
                      leaking_greedy=sum(p.leaking_greedy for p in parts), hits=dict(total),
                      max_cosine=max(cosines) if cosines else None,
                      near_duplicates=sum(p.near_duplicates for p in parts))


Generated = tuple[list[Prompt], list[Sample], int]  # a person's prompts, their samples, the tokens budgeted


def _generate(model, tokenizer, people: Sequence[PersonPrompts], config) -> list[Generated]:
    """Every person's budgeted prompts and their samples (greedy, then sampled), generated in batches that
    mix people: one call per distinct number of samples per prompt (the same for all, unless a budget cut)."""
    plans = [budgeted(_prompts_of(tokenizer, p, config), config.generation_token_budget, config.samples_per_prompt,
                      config.max_new_tokens) for p in people]
    out: list = [None] * len(people)
    for samples_each in sorted({s for _, s in plans}):
        members = [i for i, (_, s) in enumerate(plans) if s == samples_each]
        prompts = [prompt for i in members for prompt in plans[i][0]]
        samples = generate_samples(model, tokenizer, prompts, samples_per_prompt=samples_each,
                                   max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                                   top_p=config.top_p, seed=config.generation_seed,
                                   batch_size=config.generation_batch_size,
                                   greedy=True)
        owner = [(i, n) for i in members for n in range(len(plans[i][0]))]  # batch prompt -> (person, own index)
        mine: dict[int, list[Sample]] = {i: [] for i in members}
        for s in samples:
            person, index = owner[s.prompt]
            mine[person].append(Sample(index, s.text, s.greedy))
        for i in members:
            out[i] = (plans[i][0], mine[i], len(plans[i][0]) * (1 + samples_each) * config.max_new_tokens)
    return out


def _person_counts(person: PersonPrompts, generated, found: tuple[list[float], dict[str, float]]
                   ) -> tuple[LeakCounts, dict[str, float]]:
    """A person's counts, and record id -> the highest cosine of a continuation to it (`found`: their search)."""
    prompts, samples, tokens = generated
    per_sample, per_record = found
    return _counts(prompts, samples, _leaks(person, prompts, samples), per_sample, tokens), per_record


PersonCounts = tuple[LeakCounts, dict[str, float]]  # a person's counts; record id -> closest continuation


def person_counts(model, tokenizer, people: Sequence[PersonPrompts], embed: Embed | None,
                  config) -> list[PersonCounts]:
    """Each person's counts under the model, their prompts generated in shared batches."""
    generated = _generate(model, tokenizer, people, config)
    found = [([], {})] * len(people)
    if embed is not None:
        records, said = _embedded(people, [made[1] for made in generated], embed)
        found = [_search(person, r, v) for person, r, v in zip(people, records, said)]
    return [_person_counts(person, made, hit) for person, made, hit in zip(people, generated, found)]


def run_extraction(model, tokenizer, plan: ExtractionPlan, config, known: Mapping[str, PersonCounts] | None = None
                   ) -> tuple[dict[str, ExtractionReport], dict[str, float], LeakCounts]:
    """Each judged person's report (by label), record id -> the highest cosine of a continuation to it, and
    the chance rate (the held-out people's counts merged). `known`: counts already generated under this
    model, judged or held-out people's by label (e.g. a run's requests, generated together); the others are
    generated now, in shared batches."""
    known = dict(known or {})
    missing = [p for p in (*plan.people, *plan.holdout) if p.label not in known]
    known.update(zip((p.label for p in missing), person_counts(model, tokenizer, missing, plan.embed, config)))
    chance = _merged([known[p.label][0] for p in plan.holdout])
    level = config.alpha / max(1, plan.family)
    reports, cosines = {}, {}
    for person in plan.people:
        counts, closest = known[person.label]
        p_value = leak_p_value(counts.leaking_samples, counts.samples, chance.leaking_samples, chance.samples)
        notes = []
        if chance.people < 2:
            notes.append(f"the chance rate rests on {chance.people} held-out person(s): raise the dataset "
                         "version's holdout")
        reports[person.label] = ExtractionReport(person=counts, chance=chance, p_value=p_value, alpha=level,
                                                 leaked=counts.leaking_samples > 0 and p_value < level, notes=notes)
        for rid, cosine in closest.items():
            cosines[rid] = max(cosines.get(rid, -1.0), cosine)
    return reports, cosines, chance
