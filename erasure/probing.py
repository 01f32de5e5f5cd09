"""Probe an adapter for a set of records: gather texts, holdout, secrets and subject keys, then run the probes.

The graph says which dataset version an adapter came from (its manifest) and which records that version
held out; the content store gives the texts; Presidio finds the secrets to test for exposure and scans
generations for the record owners' identifiers and secrets (erasure.extraction); the sentence embedder and
FAISS measure how close generations come to the records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from erasure.context import ErasureContext
from erasure.errors import ConfigurationError
from erasure.extraction import extraction_plan, owners_as_person
from lineage.content_store import ContentStore
from lineage.errors import NotFoundError
from lineage.store import GraphStore, queries

__all__ = ["ProbeRequest", "adapter_dataset_version", "adapter_loss_on", "chat_turns", "erasure_probe_config",
           "probe_records", "record_texts", "scored_spans", "secret_spans"]


@dataclass(frozen=True)
class ProbeRequest:
    """Which adapter, which records, calibrated against which dataset version, and what to run."""

    adapter: Path
    record_ids: tuple[str, ...]
    dataset: str | None = None  # default: the dataset version in the adapter's manifest
    exposure: bool = True
    generate: bool = True
    regurgitation: bool = True
    forms: tuple[str, ...] = ()  # served forms to probe too (unlearning.forms), each in report.forms


def adapter_dataset_version(adapter_dir: Path) -> str | None:
    """The dataset version an adapter was trained on, from the manifest Lethe writes beside it."""
    manifest = Path(adapter_dir) / "lethe_manifest.json"
    if not manifest.is_file():
        return None
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("dataset_version")
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{manifest} is unreadable ({exc}); re-export the adapter with Lethe") from exc


def record_texts(content: ContentStore, ids: Sequence[str], what: str) -> dict[str, str]:
    """Texts of `ids` from the content store, in order; a missing one (erased, never ingested) is an error."""
    found = content.get_many(list(ids))
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(f"{len(missing)} {what} record(s) have no text in the content store (erased or never "
                            f"ingested), e.g. {missing[:3]}; probe records that are still held")
    return {i: found[i] for i in ids}


def chat_turns(content: ContentStore, texts: Mapping[str, str]) -> dict[str, list]:
    """Text -> turns ((start, end, role) of each message) of the chat records among `texts` (id -> text)."""
    return {texts[rid]: turns for rid, turns in content.turns(list(texts)).items()}


def scored_spans(content: ContentStore, texts: Mapping[str, str], loss_on: str) -> dict:
    """Text -> the spans the probes score for the chat records among `texts`: what a fine-tune whose loss was
    on `loss_on` taught (unlearning.token_spans.scored_spans). Plain records are scored whole."""
    from unlearning.token_spans import scored_spans as spans_taught

    return spans_taught(chat_turns(content, texts), loss_on)


def adapter_loss_on(adapter_dir: Path) -> str:
    """Which tokens the adapter's fine-tune put its loss on, from its manifest ("all" when not recorded)."""
    manifest = Path(adapter_dir) / "lethe_manifest.json"
    if not manifest.is_file():
        return "all"
    return (json.loads(manifest.read_text(encoding="utf-8")).get("training_config") or {}).get("loss_on", "all")


def secret_spans(texts: Mapping[str, str]) -> dict:
    """The secret spans Presidio finds in each text (records without any are left out), for exposure tests."""
    from lineage.pii.secrets import SecretFinder
    from unlearning.probes import SecretSpan

    ids = list(texts)
    found = SecretFinder().find([texts[i] for i in ids])
    return {rid: [SecretSpan(s.start, s.end, s.entity) for s in spans] for rid, spans in zip(ids, found) if spans}


def people_of(graph: GraphStore, record_ids: Sequence[str]) -> dict[str, str]:
    """Record id → the person it belongs to (its owner's subject key; the smallest when shared), for the AUC's
    interval; records without an owner are left out (each counts as a person of its own)."""
    return {rid: min(keys) for rid, keys in queries.record_owners(graph, record_ids).items() if keys}


GENERATION_BUDGET = 1024  # new tokens per person and model in an erasure's extraction test
CONTINUATION_TOKENS = 32  # one continuation: a code, an account id or an e-mail address after its context
# Held-out people for the chance rate: enough that a person's memorized name and code, back in two of their 17
# samples (a customer with few tickets), are beyond chance at 0.01 over 5 models even when two held-out samples
# guess a name (2 of 17 against 2 of ~1,200: p = 0.001). Six were too few (2 of 17 against 0 of 157: p = 0.009).
# The price, on the demo (2-core CPU): extraction takes 5.3-6.8 s per request of a run of 30, where 6 held-out
# people took 2.9 s (they are prompted once per model for the run, but on every model). bench.extraction_power
# measures the test's power pepper by pepper.
HOLDOUT_PEOPLE = 48


def erasure_probe_config(generation_budget: int = GENERATION_BUDGET):
    """The probes of an erasure: 255 look-alikes per secret (a memorized one reaches 8 bits, chance is ~1.4:
    enough to tell them apart), one secret per record; generation within `generation_budget` new tokens per
    person and model (32 per continuation), up to 48 held-out people for the chance rate."""
    from unlearning.probes import ProbeConfig

    if isinstance(generation_budget, bool) or not isinstance(generation_budget, int) \
            or generation_budget < CONTINUATION_TOKENS:
        raise ConfigurationError(f"the generation budget must be a whole number of tokens, at least one "
                                 f"continuation ({CONTINUATION_TOKENS}); got {generation_budget!r}")
    return ProbeConfig(exposure_candidates=255, max_secrets_per_record=1, samples_per_prompt=2,
                       max_new_tokens=CONTINUATION_TOKENS, generation_token_budget=generation_budget,
                       holdout_people=HOLDOUT_PEOPLE)


def probe_records(ctx: ErasureContext, request: ProbeRequest, config=None):
    """Run every probe of one adapter on the requested records; returns the ProbeReport."""
    from unlearning.forms import parse_forms
    from unlearning.probes import ProbeConfig, probe_forms

    if not request.record_ids:
        raise ConfigurationError("name at least one record to probe (--record ID, repeatable)")
    dataset = request.dataset or adapter_dataset_version(request.adapter)
    if dataset is None:
        raise ConfigurationError(f"{request.adapter} has no Lethe manifest naming its dataset version; say which "
                                 "version's holdout to calibrate against with --dataset")
    content = ctx.open_content()
    named = queries.holdout_sharing_people_with_training(ctx.graph, dataset)
    holdout_ids = [i for i in queries.holdout_record_ids(ctx.graph, dataset) if i not in named]
    scope_ids = list(dict.fromkeys(request.record_ids))
    scope = record_texts(content, scope_ids, "requested")
    holdout = record_texts(content, [i for i in holdout_ids if i not in scope], "holdout")
    config = (config or ProbeConfig()).model_copy(update={"generate": request.generate})
    secrets = secret_spans(scope) if request.exposure else {}
    forms = parse_forms(request.forms)
    extraction = extraction_plan(ctx, [owners_as_person(ctx, "requested", scope_ids)], list(holdout), config,
                                 family=1 + len(forms), search=request.regurgitation)
    people = people_of(ctx.graph, [*scope, *holdout])
    report = probe_forms(ctx.require_base_model(), request.adapter, forms, scope, holdout,
                         config, secrets=secrets, extraction=extraction, people=people,
                         scored_spans=scored_spans(content, {**scope, **holdout},
                                                   adapter_loss_on(request.adapter)))
    untrained = set(scope_ids) - queries.trained_in_dataset(ctx.graph, dataset, scope_ids)
    if untrained:
        report.notes.append(f"{len(untrained)} requested record(s) are not in the training shards of {dataset}, "
                            f"e.g. {sorted(untrained)[0]}: the adapter never trained on them")
    report.notes.append(f"calibrated against the {len(holdout)} holdout records of {dataset}"
                        + (f" ({len(named)} held-out records left out: they share a person with trained records)"
                           if named else ""))
    return report
