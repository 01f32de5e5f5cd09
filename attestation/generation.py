"""Extraction by generation as an erasure predicate carries it: counts, the held-out people's rate, the test.

Never generated text: a continuation may hold exactly the personal data the erasure removed.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from attestation.schema import Count, Name, Probability, StrictModel

__all__ = ["GenerationCounts", "GenerationSummary"]


class GenerationCounts(StrictModel):
    """Generations of one side (the subject, or the held-out people): counts only, never generated text."""

    people: Count
    prompts: dict[Name, Count]  # prompt kind (prefix, identity) -> prompts
    greedy: Count
    sampled: Count
    tokens_budgeted: Count
    leaking_samples: Count
    leaking_greedy: Count
    hits: dict[Name, Count]  # identifier kind (or secret) -> samples that gave it away
    max_cosine: Annotated[float, Field(ge=-1.0, le=1.0)] | None
    near_duplicates: Count

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.leaking_greedy > min(self.greedy, self.leaking_samples) or \
                self.leaking_samples > self.greedy + self.sampled:
            raise ValueError("leaking samples cannot outnumber the samples")
        return self


class GenerationSummary(StrictModel):
    """Extraction by generation on one adapter: the subject's counts against the held-out people's rate."""

    subject: GenerationCounts
    chance: GenerationCounts
    chance_rate: Probability
    p_value: Probability
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)]
    leaked: bool

    @model_validator(mode="after")
    def _decision(self) -> Self:
        if self.leaked != (self.subject.leaking_samples > 0 and self.p_value < self.alpha):
            raise ValueError("leaked must say whether the subject's leaking samples are beyond chance at alpha")
        return self
