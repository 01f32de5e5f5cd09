"""`gradient_ascent`: raise the forget texts' NLL on the served adapter (fast, approximate, unbounded)."""

from __future__ import annotations

from unlearning.methods.approximate import ApproximateConfig, BatchTerms, run_approximate
from unlearning.methods.base import MethodKind, RemedyInput, RemedyOutcome, StepCallback
from unlearning.methods.losses import gradient_ascent_loss
from unlearning.methods.registry import MethodSpec, register_method

__all__ = ["GradientAscentConfig", "SPEC", "run"]


class GradientAscentConfig(ApproximateConfig):
    """Gradient ascent on the forget set only; nothing holds the rest of the model in place."""


def run(config: GradientAscentConfig, remedy: RemedyInput,
        on_step: StepCallback | None = None) -> RemedyOutcome:
    """Minimize -NLL(forget) for `config.steps` steps; write the new adapter to `remedy.out_dir`."""

    def objective(terms: BatchTerms):
        return gradient_ascent_loss(terms.forget_nll)

    return run_approximate("gradient_ascent", config, remedy, objective, uses_retain=False, on_step=on_step)


SPEC = register_method(MethodSpec(name="gradient_ascent", kind=MethodKind.APPROXIMATE,
                                  config_class=GradientAscentConfig, run=run))
