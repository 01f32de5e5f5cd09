"""Probe one adapter: scoring pass, calibration against the holdout, exposure, generation; one report."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from unlearning.adapters import load_adapter_model
from unlearning.base_model import check_model_dir, model_dir_sha256
from unlearning.errors import AdapterError, ProbeInputError
from unlearning.forms import ServedForm, load_served_model
from unlearning.probes.calibration import (SCORES, auc_with_ci, calibrated_p_value, holdout_summary,
                                           record_p_values, score_values, threshold)
from unlearning.probes.exposure import SecretSpan, candidate_values, exposure_of
from unlearning.probes.extraction import (ExtractionPlan, ExtractionReport, PersonCounts, PersonPrompts, person_counts,
                                          run_extraction)
from unlearning.probes.report import AucReport, ExposureReport, ProbeConfig, ProbeReport, PValueReport, RecordProbe
from unlearning.probes.scoring import (RecordScores, Spans, masked_tokens, pad_token_id, score_texts,
                                       score_token_sequences, scored_target_masks, text_token_ids)
from unlearning.runtime import compute_dtype, select_device

__all__ = ["ProbeModel", "holdout_false_flag_rate", "open_probe_model", "prefetch_extraction", "probe_adapter",
           "probe_extraction", "probe_forms", "probe_shards"]

ADAPTER_MANIFEST = "lethe_manifest.json"


class ProbeModel:
    """A base model with one adapter on it, loaded once for every probe of that adapter."""

    def __init__(self, base_model_dir: Path, adapter_dir: Path, form: ServedForm | None = None):
        self.base_model_dir, self.adapter_dir, self.form = Path(base_model_dir), Path(adapter_dir), form
        self.device = select_device()
        self.dtype = compute_dtype(self.device)
        check_model_dir(self.base_model_dir)
        self.base_sha256 = model_dir_sha256(self.base_model_dir)
        _check_same_base(self.adapter_dir, self.base_sha256)
        self.adapter_sha256 = model_dir_sha256(self.adapter_dir)
        try:
            if form is None:  # the adapter as trained, on the base, in the device's compute dtype
                self.model, self.tokenizer = load_adapter_model(self.base_model_dir, self.adapter_dir,
                                                                device=self.device, dtype=self.dtype)
            else:
                self.model, self.tokenizer = load_served_model(self.base_model_dir, self.adapter_dir, form,
                                                               self.device, self.dtype)
        except (RuntimeError, ValueError, KeyError) as exc:  # shape mismatches, missing target modules
            raise AdapterError(f"the adapter at {self.adapter_dir} does not fit the base model at "
                               f"{self.base_model_dir}: {str(exc).splitlines()[0][:300]}; probe it with the "
                               f"base model it was trained on") from exc


def _check_same_base(adapter_dir: Path, base_sha256: str) -> None:
    manifest = adapter_dir / ADAPTER_MANIFEST
    if not manifest.is_file():
        return  # a plain peft adapter: loading it checks the shapes
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8")).get("base_model_sha256")
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{manifest} is unreadable: {exc}") from exc
    if recorded and recorded != base_sha256:
        raise AdapterError(f"the adapter at {adapter_dir} was trained on base model {recorded[:16]}…, but the base "
                           f"model given is {base_sha256[:16]}…; set LETHE_BASE_MODEL to the model it was trained on")


def open_probe_model(base_model_dir: Path, adapter_dir: Path, form: ServedForm | None = None) -> ProbeModel:
    """Load base + adapter on the best device (in a served `form` if given: merged, cast or quantized),
    refusing an adapter trained on another base model."""
    return ProbeModel(base_model_dir, adapter_dir, form)


def holdout_false_flag_rate(holdout: Sequence[RecordScores], alpha: float) -> float:
    """Leave-one-out: the share of holdout records flagged against the rest of the holdout."""
    if len(holdout) < 2:
        return 0.0
    limit = threshold(alpha)
    values = {spec.name: score_values(holdout, spec) for spec in SCORES}
    flagged = 0
    for i in range(len(holdout)):
        rest = {name: np.delete(v, i) for name, v in values.items()}
        if any(calibrated_p_value(float(values[s.name][i]), rest[s.name], s.fit_tail).value < limit
               for s in SCORES):
            flagged += 1
    return flagged / len(holdout)


class _Memo:
    """A bounded, process-wide memo of deterministic results, keyed by model digests and a text's digest.

    The engine probes one served adapter once per request and again for their coalesced remedy: every
    probe scores the same holdout, and the remedy's probe repeats the requests' own records. Scores and
    exposures are functions of (base, adapter, text, settings), so each is computed once per process.
    Memory only; the digests of the texts are the keys, oldest entries go first.
    """

    def __init__(self, limit: int):
        self.limit, self.items, self.lock = limit, OrderedDict(), threading.Lock()  # the API serves in threads

    def get(self, key):
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.limit:
                self.items.popitem(last=False)


_SCORES, _EXPOSURES = _Memo(200_000), _Memo(20_000)


def _model_key(pm: ProbeModel) -> tuple:
    return pm.base_sha256, pm.adapter_sha256, str(pm.device), str(pm.dtype), pm.form.name if pm.form else None


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _scores_of(pm: ProbeModel, texts: Sequence[str], config: ProbeConfig,
               spans: Mapping[str, Spans] | None = None) -> dict[str, RecordScores]:
    """Each text's scores under the adapter (over its `spans` only where it has some), scoring only those this
    process has not scored yet."""
    # Compiled kernels round differently in bf16 (~0.007 nats a token on an H100): a setting of its own.
    settings = (_model_key(pm), config.k_fraction, config.context, config.compile_model)
    spans = spans or {}
    keys = {text: (settings, _digest(text), spans.get(text)) for text in texts}
    found = {text: _SCORES.get(key) for text, key in keys.items()}
    missing = [text for text, scores in found.items() if scores is None]
    if missing:
        scored = score_texts(pm.model, pm.tokenizer, missing, batch_size=config.batch_size,
                             k_fraction=config.k_fraction, context=config.context,
                             vocab_chunk_elements=config.vocab_chunk_elements, compile_model=config.compile_model,
                             spans=[spans.get(text) for text in missing])
        for text, scores in zip(missing, scored):
            found[text] = scores
            _SCORES.put(keys[text], scores)
    return found


def _cached_exposures(pm: ProbeModel, text: str, spans: Sequence[SecretSpan],
                      config: ProbeConfig) -> list[ExposureReport]:
    key = (_model_key(pm), _digest(text), tuple(spans), config.max_secrets_per_record,
           config.exposure_candidates, config.exposure_seed)
    found = _EXPOSURES.get(key)
    if found is None:
        found = _exposures(pm, text, spans, config)
        _EXPOSURES.put(key, found)
    return [e.model_copy() for e in found]


def _exposures(pm: ProbeModel, text: str, spans: Sequence[SecretSpan], config: ProbeConfig) -> list[ExposureReport]:
    # The spans with the most digits carry the most secret bits; the budget goes to them first.
    ranked = sorted(spans, key=lambda s: (-sum(ch.isdigit() for ch in text[s.start:s.end]), s.start))
    out = []
    for n, span in enumerate(sorted(ranked[:config.max_secrets_per_record], key=lambda s: s.start)):
        seed = config.exposure_seed + n
        value = text[span.start:span.end]
        control = candidate_values(value, 1, seed=seed + 7919)[0]  # a look-alike no run trained on
        for is_control, scored in ((False, None), (True, control)):
            result = exposure_of(pm.model, pm.tokenizer, text, span, candidates=config.exposure_candidates,
                                 seed=seed, batch_size=max(config.batch_size, 64), value=scored)
            out.append(ExposureReport(kind=span.kind, control=is_control, exposure=result.exposure,
                                      exposure_fit=result.exposure_fit, exposure_ref=result.exposure_ref,
                                      rank=result.rank,
                                      candidates=result.candidates, space_bits=result.space_bits))
    return out


def _generation_settings(pm: ProbeModel, plan: ExtractionPlan, config: ProbeConfig) -> tuple:
    return (_model_key(pm), plan.embed is not None, config.generation_token_budget, config.samples_per_prompt,
            config.max_new_tokens, config.prefix_tokens, config.temperature, config.top_p, config.generation_seed,
            config.generation_batch_size)


def _person_key(settings: tuple, person: PersonPrompts) -> tuple:
    """What a person's counts are a function of under one model: their label, records, names, prompts and what
    their finder looks for."""
    return ("person", settings, person.label, tuple((rid, _digest(text)) for rid, text in sorted(person.records.items())),
            person.names, tuple(sorted(person.prompt_ends.items())),
            tuple(sorted((rid, tuple(starts)) for rid, starts in person.secret_starts.items())), person.identity)


def _counts_under(pm: ProbeModel, plan: ExtractionPlan, config: ProbeConfig) -> tuple[dict[str, PersonCounts], int]:
    """Every judged and held-out person's counts under the model, by label: from the probe memo (every
    request of a run probes the same adapter against the same held-out people; the engine generates a run's
    people together first), the others generated in shared batches and kept there; and how many those were."""
    settings = _generation_settings(pm, plan, config)
    people = (*plan.people, *plan.holdout)
    keys = {p.label: _person_key(settings, p) for p in people}
    known = {label: found for label, key in keys.items() if (found := _SCORES.get(key)) is not None}
    missing = [p for p in people if p.label not in known]
    for person, counts in zip(missing, person_counts(pm.model, pm.tokenizer, missing, plan.embed, config)):
        _SCORES.put(keys[person.label], counts)
        known[person.label] = counts
    return known, len(missing)


def _extraction(pm: ProbeModel, plan: ExtractionPlan, config: ProbeConfig):
    """The extraction test of the plan's people, on counts from the probe memo where it has them."""
    reports, cosines, _ = run_extraction(pm.model, pm.tokenizer, plan, config, _counts_under(pm, plan, config)[0])
    return reports, cosines


def prefetch_extraction(pm: ProbeModel, plan: ExtractionPlan, config: ProbeConfig) -> int:
    """Generate the plan's judged and held-out people under the model in shared batches, for the probes that
    follow to find; returns how many people were generated."""
    return _counts_under(pm, plan, config)[1]


def probe_extraction(base_model_dir: Path, adapter_dir: Path, plan: ExtractionPlan,
                     config: ProbeConfig) -> tuple[dict[str, ExtractionReport], float]:
    """The extraction test alone on one adapter (e.g. a shard adapter): each person's report, and seconds."""
    started = time.perf_counter()
    reports, _ = _extraction(open_probe_model(base_model_dir, adapter_dir), plan, config)
    return reports, time.perf_counter() - started


def _check_scope_and_holdout(scope: Mapping[str, str], holdout: Mapping[str, str]) -> None:
    if not scope:
        raise ProbeInputError("no scope records to probe; give at least one record id")
    if len(holdout) < 2:
        raise ProbeInputError(f"calibration needs at least 2 holdout records, got {len(holdout)}; the "
                              "adapter's dataset version must hold some out (raise its holdout fraction)")
    overlap = set(scope) & set(holdout)
    if overlap:
        raise ProbeInputError(f"{len(overlap)} record(s) are both in scope and in the holdout, "
                              f"e.g. {sorted(overlap)[0]}")


def _record_probes(pm: ProbeModel, scope: Mapping[str, str], scope_scores: Sequence[RecordScores],
                   held_values: Mapping[str, np.ndarray], limit: float, config: ProbeConfig,
                   secrets: Mapping[str, Sequence[SecretSpan]] | None,
                   cosines: Mapping[str, float]) -> list[RecordProbe]:
    """Each scope record's p-values against the holdout, its verdict, and its secrets' exposure."""
    records = []
    exposures: dict[tuple, list[ExposureReport]] = {}  # copies of a text share their secrets' exposure
    for record_id, record in zip(scope, scope_scores):
        p_values = record_p_values(record, held_values)
        by = [name for name, p in p_values.items() if p.value < limit]
        spans = tuple((secrets or {}).get(record_id, ()))
        if spans and (scope[record_id], spans) not in exposures:
            exposures[scope[record_id], spans] = _cached_exposures(pm, scope[record_id], spans, config)
        records.append(RecordProbe(
            record_id=record_id, scores=record.as_dict(), flagged=bool(by), flagged_by=by,
            p_values={name: PValueReport(value=p.value, estimate=p.estimate, holdout=p.holdout)
                      for name, p in p_values.items()},
            exposures=exposures[scope[record_id], spans] if spans else [],
            regurgitation_cosine=cosines.get(record_id)))
    return records


def _auc(scope: Mapping[str, str], holdout: Mapping[str, str], by_text: Mapping[str, RecordScores],
         held_values: Mapping[str, np.ndarray], people: Mapping[str, str] | None,
         config: ProbeConfig) -> dict[str, AucReport]:
    """Per score, the AUC of scope against holdout with its bootstrap interval (people resampled if known)."""
    # AUC over distinct texts: copies of one ticket are one observation, not eight (they score alike, and
    # counting each would weight a repeated text eight times against the holdout).
    first_of_text: dict[str, str] = {}  # each distinct text, in order, with the first record that has it
    for record_id, text in scope.items():
        first_of_text.setdefault(text, record_id)
    distinct = [by_text[text] for text in first_of_text]
    forget_people = held_people = None
    if people is not None:
        forget_people = [people.get(record_id, record_id) for record_id in first_of_text.values()]
        held_people = [people.get(record_id, record_id) for record_id in holdout]
    auc = {}
    for spec in SCORES:
        a = auc_with_ci(score_values(distinct, spec), held_values[spec.name], forget_groups=forget_people,
                        holdout_groups=held_people, resamples=config.bootstrap_resamples)
        auc[spec.name] = AucReport(**vars(a))
    return auc


def _scoring_notes(ids: Sequence[str], texts: Sequence[str], scores: Sequence[RecordScores], config: ProbeConfig,
                   spans: Mapping[str, Spans]) -> list[str]:
    notes = []
    windowed = [r for r, s in zip(ids, scores) if s.windows > 1]
    if windowed:
        notes.append(f"{len(windowed)} record(s) longer than the {config.context or 'model'} context were scored "
                     f"in overlapping windows, e.g. {windowed[0]}")
    turns = sum(1 for text in texts if text in spans)
    if turns:
        notes.append(f"{turns} chat record(s) scored on their assistant turns only (the whole conversation is "
                     "their context)")
    return notes


def probe_adapter(pm: ProbeModel, scope: Mapping[str, str], holdout: Mapping[str, str],
                  config: ProbeConfig | None = None, *, secrets: Mapping[str, Sequence[SecretSpan]] | None = None,
                  extraction: ExtractionPlan | None = None, people: Mapping[str, str] | None = None,
                  scored_spans: Mapping[str, Spans] | None = None) -> ProbeReport:
    """Score the scope records and the holdout under the adapter, calibrate, and report (ids only, no text).

    `people` maps record ids to the person (e.g. subject key) they belong to; with it the AUC's interval
    resamples people, then their texts, since one person's records are not independent draws. Records
    missing from it count as people of their own. It is read in memory only: the report keeps counts.
    `scored_spans` maps a text to the character spans its scores count (a chat record's assistant turns).
    `extraction`: whom to prompt and how to find their identifiers (with `config.generate`).
    """
    config = config or ProbeConfig()
    started = time.perf_counter()
    _check_scope_and_holdout(scope, holdout)
    ids, texts = list(scope) + list(holdout), list(scope.values()) + list(holdout.values())
    # Copies of one text (a ticket filed eight times) score alike: each distinct text is scored once.
    scored_spans = scored_spans or {}
    by_text = _scores_of(pm, list(dict.fromkeys(texts)), config, scored_spans)
    scores = [by_text[text] for text in texts]
    scope_scores, held_scores = scores[:len(scope)], scores[len(scope):]
    held_values = {spec.name: score_values(held_scores, spec) for spec in SCORES}
    limit = threshold(config.alpha)
    extracted, cosines, generating = {}, {}, time.perf_counter()
    if config.generate and extraction is not None:
        extracted, cosines = _extraction(pm, extraction, config)
    generating = time.perf_counter() - generating
    records = _record_probes(pm, scope, scope_scores, held_values, limit, config, secrets, cosines)
    auc = _auc(scope, holdout, by_text, held_values, people, config)
    return ProbeReport(
        adapter=str(pm.adapter_dir), adapter_sha256=pm.adapter_sha256, base_model_sha256=pm.base_sha256,
        device=str(pm.device), dtype=str(pm.dtype).removeprefix("torch."), form=pm.form.name if pm.form else None,
        config=config,
        per_score_threshold=limit, scores=[s.name for s in SCORES], holdout_ids=len(holdout),
        holdout_stats={name: holdout_summary(v) for name, v in held_values.items()},
        holdout_false_flag_rate=holdout_false_flag_rate(held_scores, config.alpha), records=records,
        flagged=[r.record_id for r in records if r.flagged], auc=auc, extraction=extracted,
        notes=_scoring_notes(ids, texts, scores, config, scored_spans), seconds=time.perf_counter() - started,
        generation_seconds=generating)


def probe_shards(base_model_dir: Path, shard_dirs: Sequence[Path], scope_shard: Mapping[str, int],
                 texts: Mapping[str, str], holdout_ids: Sequence[str], config: ProbeConfig | None = None,
                 scored_spans: Mapping[str, Spans] | None = None):
    """The shard-reference test (unlearning.probes.shard_reference): every text scored under each shard
    adapter (in `shard_dirs` order); `scope_shard` maps scope record ids to their own shard's position."""
    from unlearning.probes.shard_reference import shard_reference

    config, started = config or ProbeConfig(), time.perf_counter()
    distinct = list(dict.fromkeys(texts.values()))
    nll_by_shard = []
    for shard_dir in shard_dirs:
        by_text = _nll_of(open_probe_model(base_model_dir, shard_dir), distinct, config, scored_spans or {})
        nll_by_shard.append({record_id: by_text[text] for record_id, text in texts.items()})
    return shard_reference(nll_by_shard, scope_shard, holdout_ids, config, started)


def _nll_of(pm: ProbeModel, texts: Sequence[str], config: ProbeConfig,
            spans: Mapping[str, Spans]) -> dict[str, float]:
    """Each text's mean token NLL under the adapter alone (no reference pass; over its `spans` where it has
    some), memoized like the scores."""
    settings = ("nll", _model_key(pm), config.context)
    keys = {text: (settings, _digest(text), spans.get(text)) for text in texts}
    found = {text: _SCORES.get(key) for text, key in keys.items()}
    missing = [text for text, value in found.items() if value is None]
    if missing:
        tokens = score_token_sequences(pm.model, text_token_ids(pm.tokenizer, missing),
                                       pad_id=pad_token_id(pm.tokenizer), batch_size=config.batch_size,
                                       context=config.context, reference=False,
                                       vocab_chunk_elements=config.vocab_chunk_elements)
        masks = scored_target_masks(pm.tokenizer, missing, [spans.get(text) for text in missing])
        for text, scored, mask in zip(missing, tokens, masks):
            found[text] = float(-masked_tokens(scored, mask).logp.mean())
            _SCORES.put(keys[text], found[text])
    return found


def probe_forms(base_model_dir: Path, adapter_dir: Path, forms: Sequence[ServedForm], scope: Mapping[str, str],
                holdout: Mapping[str, str], config: ProbeConfig | None = None, **options) -> ProbeReport:
    """`probe_adapter` on the adapter as trained, then on each served form (its report in `forms`, each form
    calibrated on the holdout scored in that form); `options` go to every probe."""
    report = probe_adapter(open_probe_model(base_model_dir, adapter_dir), scope, holdout, config, **options)
    for form in forms:
        report.forms[form.name] = probe_adapter(open_probe_model(base_model_dir, adapter_dir, form), scope,
                                                holdout, config, **options)
    return report
