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
    forget_people: int | None = None  # set when the interval resampled people (then their texts)
    holdout_people: int | None = None


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


def auc_with_ci(forget: np.ndarray, holdout: np.ndarray, *, forget_groups: Sequence[str] | None = None,
                holdout_groups: Sequence[str] | None = None, resamples: int = 1000, level: float = 0.95,
                seed: int = 0) -> Auc:
    """Mann-Whitney AUC of oriented scores, with a percentile bootstrap interval (both sets resampled).

    Without groups each value is resampled on its own. With groups (the person each value belongs to),
    the bootstrap is two-stage: people with replacement, then each drawn person's values with replacement.
    One person's records move together (their name, their e-mail's digits), so resampling records alone
    reads twenty tickets of five people as twenty independent draws and gives too narrow an interval;
    with a single person the two-stage draw is the record-level one.
    """
    forget, holdout = np.asarray(forget, dtype=np.float64), np.asarray(holdout, dtype=np.float64)
    if len(forget) == 0 or len(holdout) == 0:
        raise ProbeInputError(f"AUC needs records on both sides: {len(forget)} forget, {len(holdout)} holdout")
    for name, values, groups in (("forget", forget, forget_groups), ("holdout", holdout, holdout_groups)):
        if groups is not None and len(groups) != len(values):
            raise ProbeInputError(f"{name}_groups names {len(groups)} people for {len(values)} values; give one per value")

    def auc(f: np.ndarray, h: np.ndarray) -> float:
        ranks = stats.rankdata(np.concatenate([f, h]))  # ties get their mean rank: they count one half
        return float((ranks[:len(f)].sum() - len(f) * (len(f) + 1) / 2) / (len(f) * len(h)))

    rng = np.random.default_rng(seed)
    grouped = forget_groups is not None or holdout_groups is not None
    draw_forget, draw_holdout = _two_stage(forget, forget_groups, rng), _two_stage(holdout, holdout_groups, rng)
    boots = [auc(draw_forget(), draw_holdout()) for _ in range(resamples)]
    tail = (1 - level) / 2
    return Auc(auc(forget, holdout), float(np.quantile(boots, tail)), float(np.quantile(boots, 1 - tail)),
               len(forget), len(holdout),
               _people(forget, forget_groups) if grouped else None, _people(holdout, holdout_groups) if grouped else None)


def _people(values: np.ndarray, groups: Sequence[str] | None) -> int:
    return len(values) if groups is None else len(set(groups))


def _two_stage(values: np.ndarray, groups: Sequence[str] | None, rng: np.random.Generator):
    """A sampler of bootstrap draws: people with replacement, then each one's values (no groups: values)."""
    if groups is None:
        return lambda: rng.choice(values, len(values))
    names = list(dict.fromkeys(groups))
    index = {name: i for i, name in enumerate(names)}
    person = np.array([index[g] for g in groups])
    ordered = values[np.argsort(person, kind="stable")]
    sizes = np.bincount(person, minlength=len(names))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def draw() -> np.ndarray:
        people = rng.integers(len(names), size=len(names))
        counts = sizes[people]
        # Each drawn person contributes as many values as they have, drawn from their own with replacement.
        offsets = np.repeat(starts[people], counts) + (rng.random(counts.sum()) * np.repeat(counts, counts)).astype(int)
        return ordered[offsets]

    return draw


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
