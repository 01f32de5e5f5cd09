"""Calibration against the holdout: p-values per score, a corrected threshold, AUC with a confidence interval.

Every dataset version holds out records no run trains on; they show what a score looks like for text
the adapter never saw. A record's p-value for a score is the chance that a holdout record scores at least
as "memorized". With n holdout records an empirical p-value cannot go below 1/(n + 1), so when a record
lies beyond the whole holdout, a normal fitted to the holdout scores (on a log scale for the NLL ratio)
extrapolates the tail; the report says which estimate was used and on how many records. Discrete scores
(`es`, `em`) are never extrapolated: a normal fit to a handful of distinct values would invent tails.
A record is flagged when any score's p-value is below alpha / (number of scores) (Bonferroni).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from unlearning.errors import ProbeInputError
from unlearning.probes.scoring import RecordScores

__all__ = ["SCORES", "Auc", "PValue", "ScoreSpec", "auc_with_ci", "calibrated_p_value", "oriented",
           "score_values"]


@dataclass(frozen=True)
class ScoreSpec:
    """One score used in the verdict: how to read it from RecordScores, which way is "memorized", tail fit."""

    name: str
    higher_is_member: bool
    fit_tail: bool
    log_scale: bool = False


# The NLL ratio first: it cancels how hard a text is, and it is the score the AUC is reported on.
SCORES = (
    ScoreSpec("ratio", higher_is_member=False, fit_tail=True, log_scale=True),
    ScoreSpec("min_k_pp", higher_is_member=True, fit_tail=True),
    ScoreSpec("es", higher_is_member=True, fit_tail=False),
    ScoreSpec("em", higher_is_member=True, fit_tail=False),
)
SCORE_NAMES = tuple(s.name for s in SCORES)


@dataclass(frozen=True)
class PValue:
    """A record's p-value for one score and how it was estimated."""

    value: float
    estimate: str  # "empirical" or "normal-fit"
    holdout: int


@dataclass(frozen=True)
class Auc:
    """Forget-set-vs-holdout AUC (1 = every forget record looks more memorized than every holdout one)."""

    value: float
    ci_low: float
    ci_high: float
    forget: int
    holdout: int


def oriented(spec: ScoreSpec, values: np.ndarray) -> np.ndarray:
    """Values turned so that larger means "more memorized" (and logged where the spec says so)."""
    values = np.asarray(values, dtype=np.float64)
    if spec.log_scale:
        values = np.log(np.clip(values, 1e-12, None))
    return values if spec.higher_is_member else -values


def score_values(records: Sequence[RecordScores], spec: ScoreSpec) -> np.ndarray:
    """One score of every record, oriented."""
    return oriented(spec, np.array([getattr(r, spec.name) for r in records], dtype=np.float64))


def calibrated_p_value(value: float, holdout: np.ndarray, fit_tail: bool) -> PValue:
    """P(a holdout record scores >= value), both oriented; empirical, or a normal fit beyond the holdout."""
    n = len(holdout)
    if n == 0:
        raise ProbeInputError("calibration needs holdout records; the dataset version holds none")
    exceed = int((holdout >= value).sum())
    empirical = (1 + exceed) / (n + 1)
    if exceed > 0 or not fit_tail or n < 3:
        return PValue(empirical, "empirical", n)
    std = float(holdout.std(ddof=1))
    if std == 0.0:
        return PValue(empirical, "empirical", n)
    fitted = float(stats.norm.sf(value, loc=float(holdout.mean()), scale=std))
    # The fit only extends the tail: it may not claim more than the empirical bound allows.
    return PValue(min(empirical, fitted), "normal-fit", n)


def auc_with_ci(forget: np.ndarray, holdout: np.ndarray, *, resamples: int = 1000, level: float = 0.95,
                seed: int = 0) -> Auc:
    """Mann-Whitney AUC of oriented scores, with a percentile bootstrap interval (both sets resampled)."""
    forget, holdout = np.asarray(forget, dtype=np.float64), np.asarray(holdout, dtype=np.float64)
    if len(forget) == 0 or len(holdout) == 0:
        raise ProbeInputError(f"AUC needs records on both sides: {len(forget)} forget, {len(holdout)} holdout")

    def auc(f: np.ndarray, h: np.ndarray) -> float:
        ranks = stats.rankdata(np.concatenate([f, h]))  # ties get their mean rank: they count one half
        return float((ranks[:len(f)].sum() - len(f) * (len(f) + 1) / 2) / (len(f) * len(h)))

    rng = np.random.default_rng(seed)
    boots = [auc(rng.choice(forget, len(forget)), rng.choice(holdout, len(holdout))) for _ in range(resamples)]
    tail = (1 - level) / 2
    return Auc(auc(forget, holdout), float(np.quantile(boots, tail)), float(np.quantile(boots, 1 - tail)),
               len(forget), len(holdout))


def holdout_summary(values: np.ndarray) -> dict[str, float | int]:
    """n, mean, std and quartiles of one oriented holdout score."""
    if len(values) == 0:
        return {"n": 0}
    q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"n": int(len(values)), "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "q05": float(q[0]), "q25": float(q[1]), "median": float(q[2]), "q75": float(q[3]), "q95": float(q[4])}


def record_p_values(record: RecordScores, holdout: Mapping[str, np.ndarray]) -> dict[str, PValue]:
    """p-value of every score of one record against the oriented holdout scores."""
    return {spec.name: calibrated_p_value(float(oriented(spec, np.array([getattr(record, spec.name)]))[0]),
                                          holdout[spec.name], spec.fit_tail) for spec in SCORES}


def threshold(alpha: float) -> float:
    """Per-score p-value threshold: alpha split over the scores (Bonferroni)."""
    if not 0.0 < alpha < 1.0 or math.isnan(alpha):
        raise ProbeInputError(f"alpha must be in (0, 1), got {alpha}")
    return alpha / len(SCORES)
