"""Evidence of memorization: scoring pass, exposure, generation probes, calibration against the holdout."""

from unlearning.probes.calibration import SCORES, ScoreSpec
from unlearning.probes.exposure import ExposureResult, SecretSpan, exposure_of
from unlearning.probes.generation import Prompt, Sample, generate_samples, identity_prompts, prefix_prompts
from unlearning.probes.report import ProbeConfig, ProbeReport, RecordProbe
from unlearning.probes.runner import (ProbeModel, open_probe_model, prefetch_extraction, probe_adapter, probe_extraction,
                                     probe_forms, probe_shards)
from unlearning.probes.scoring import RecordScores, score_texts

__all__ = ["SCORES", "ExposureResult", "ProbeConfig", "ProbeModel", "ProbeReport", "Prompt", "RecordProbe",
           "RecordScores", "Sample", "ScoreSpec", "SecretSpan", "exposure_of", "generate_samples",
           "identity_prompts", "open_probe_model", "prefetch_extraction", "prefix_prompts", "probe_adapter", "probe_extraction", "probe_forms",
           "probe_shards", "score_texts"]
