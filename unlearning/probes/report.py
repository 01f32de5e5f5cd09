"""The probe report of one adapter: settings, per-record scores and verdicts, holdout statistics, AUC.

It names records by id only and holds no text: it goes into run folders, attestations and auditor
reports, where personal data must not.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from unlearning.probes.extraction import ExtractionReport
from unlearning.relearn import RelearnFacts

RELEARNED = "relearned"  # the variant name of the probe after the relearning fine-tune

__all__ = ["AucReport", "ExposureReport", "GenerationReport", "ProbeConfig", "ProbeReport", "RecordProbe",
           "ShardReferenceRecord", "ShardReferenceReport"]


class ProbeConfig(BaseModel):
    """How to probe: significance, score settings, batch sizes, exposure and generation budgets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(0.01, gt=0.0, lt=1.0, description="family-wise false-flag rate per record")
    k_fraction: float = Field(0.2, gt=0.0, le=1.0, description="Min-K%++: share of lowest tokens averaged")
    batch_size: int = Field(32, ge=1, le=4096, description="sequences per forward pass")
    vocab_chunk_elements: int | None = Field(
        None, ge=1024, description="logit elements held at once (default: 16M on the CPU, more on a GPU)")
    context: int | None = Field(None, ge=2, description="window length; default: the model's context")
    compile_model: bool = Field(False, description="run the scoring pass through torch.compile: for large jobs "
                                                   "on a GPU (1.7x on an H100 after minutes of compiling)")
    exposure_candidates: int = Field(999, ge=1, le=1_000_000, description="random look-alikes per secret")
    exposure_seed: int = Field(0, ge=0)
    max_secrets_per_record: int = Field(2, ge=0, le=64, description="secret spans tested per record, most "
                                                                      "digits first (each costs 2 x candidates)")
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000, description="for the AUC interval")
    generate: bool = Field(True, description="run the generation probes (extraction by generation)")
    samples_per_prompt: int = Field(4, ge=0, le=1024, description="sampled continuations per prompt, besides "
                                                                  "the greedy one")
    generation_token_budget: int = Field(4096, ge=1, le=10_000_000, description="new tokens generated per "
                                         "person per probed form: fewer samples, then fewer prompts beyond it")
    holdout_people: int = Field(8, ge=0, le=10_000, description="held-out people prompted for the chance rate")
    generation_batch_size: int = Field(128, ge=1, le=4096, description="continuations decoded at once (a tiny "
                                       "model on the CPU: 128 rows decode 1.7x faster than 32)")
    max_new_tokens: int = Field(48, ge=1, le=4096)
    prefix_tokens: int = Field(16, ge=1, le=4096, description="record prefix length of the prefix prompts")
    temperature: float = Field(1.0, gt=0.0, le=10.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    generation_seed: int = Field(0, ge=0)


class PValueReport(BaseModel):
    """A p-value, how it was estimated and on how many holdout records."""

    model_config = ConfigDict(extra="forbid")

    value: float
    estimate: str
    holdout: int


class ExposureReport(BaseModel):
    """Exposure of one secret span of a record (or of its never-trained control value)."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    control: bool
    exposure: float
    exposure_fit: float
    exposure_ref: float | None  # with the adapter disabled: what the base model already knew
    rank: int
    candidates: int
    space_bits: float


class RecordProbe(BaseModel):
    """One scope record: its scores, their p-values, and whether it is flagged as memorized."""

    model_config = ConfigDict(extra="forbid")

    record_id: str
    scores: dict[str, float | int]
    p_values: dict[str, PValueReport]
    flagged: bool
    flagged_by: list[str]
    exposures: list[ExposureReport] = []
    regurgitation_cosine: float | None = None  # max cosine of a generated sample to this record


class AucReport(BaseModel):
    """Forget-vs-holdout AUC of one score with its bootstrap interval (over distinct forget texts)."""

    model_config = ConfigDict(extra="forbid")

    value: float
    ci_low: float
    ci_high: float
    forget: int
    holdout: int
    # People on each side when the interval resampled people, then their texts (None: texts one by one).
    forget_people: int | None = None
    holdout_people: int | None = None


class ShardReferenceRecord(BaseModel):
    """One scope record: the shard it was trained in, its statistic and its p-value against the holdout
    scored with that shard as theirs; above_holdout: beyond every held-out record's statistic."""

    model_config = ConfigDict(extra="forbid")

    own_shard: int
    statistic: float
    p_value: float
    above_holdout: bool


class ShardReferenceReport(BaseModel):
    """The shard-reference test of one sharded adapter (ids and figures only)."""

    model_config = ConfigDict(extra="forbid")

    shards: int
    auc: AucReport  # scope (own shard as IN) vs holdout (each taking one of the scope's shards, by its id)
    holdout_range: dict[str, float]  # the null's q05, q50, q95 and max over the scope's own shards
    records: dict[str, ShardReferenceRecord]
    seconds: float


class GenerationReport(BaseModel):
    """What the sampled generations gave away (run folders written before extraction reports)."""

    model_config = ConfigDict(extra="forbid")

    prompts: dict[str, int]
    samples: int
    leaks: dict[str, int]  # identifier kind -> samples that contained the subject's identifier
    leaking_prompts: dict[str, int]  # prompt kind -> samples with a leak


class ProbeReport(BaseModel):
    """Everything one probe of one adapter found, calibrated against its dataset version's holdout."""

    model_config = ConfigDict(extra="forbid")

    adapter: str
    adapter_sha256: str
    base_model_sha256: str
    device: str
    dtype: str
    # The served form probed (unlearning.forms: int8, 4bit-nf4, ...); None: the adapter as trained, on its base.
    form: str | None = None
    config: ProbeConfig
    per_score_threshold: float
    scores: list[str]
    holdout_ids: int
    holdout_stats: dict[str, dict[str, float | int]]
    holdout_false_flag_rate: float  # leave-one-out: share of holdout records that would be flagged
    records: list[RecordProbe]
    flagged: list[str]
    auc: dict[str, AucReport]
    generation: GenerationReport | None = None  # older run folders; now `extraction`
    # Extraction by generation (unlearning.probes.extraction): each judged person's report, by their label
    # (a request id in erasures); counts only.
    extraction: dict[str, ExtractionReport] = {}
    notes: list[str]
    seconds: float
    generation_seconds: float = 0.0  # of `seconds`: the extraction test (generation, scans, search)
    # The same probe of each served form of the adapter (by form name), each calibrated on its own holdout
    # scores under that form; empty for a form's own report, and when only the adapter as trained was probed.
    forms: dict[str, ProbeReport] = {}
    # After a remedy: the same probe after a short fine-tune on retained records only (unlearning.relearn).
    relearning: RelearnFacts | None = None
    relearned: ProbeReport | None = None
    # The shard-reference membership test, when the adapter is a merge of shard adapters Lethe trained.
    shard_reference: ShardReferenceReport | None = None
    # Extraction by generation on the shard adapters the scope's records were trained in ("shard <index>" ->
    # person label -> report): kept at rest beside the merged adapter for retraining, each holds what its
    # records taught at full strength, where the merge (their mean) keeps 1/K of it.
    shard_extraction: dict[str, dict[str, ExtractionReport]] = {}

    def variants(self) -> dict[str | None, ProbeReport]:
        """This report (the adapter as trained, or its one form), each served form's by form name, and the
        relearned adapter's as "relearned": every probe whose flags count."""
        return {self.form: self, **self.forms, **({RELEARNED: self.relearned} if self.relearned else {})}

    def extraction_variants(self) -> dict[str | None, dict[str, ExtractionReport]]:
        """Every extraction test of this probe (person label -> report) by what generated: as `variants`,
        then each shard adapter ("shard <index>")."""
        return {**{name: r.extraction for name, r in self.variants().items()}, **self.shard_extraction}
