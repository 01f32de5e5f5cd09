"""`grad_diff`: gradient ascent on the forget set plus NLL on retained records, which anchors utility."""

from __future__ import annotations

from pydantic import Field

from unlearning.methods.approximate import ApproximateConfig, BatchTerms, run_approximate
from unlearning.methods.base import MethodKind, RemedyInput, RemedyOutcome, StepCallback
from unlearning.methods.losses import grad_diff_loss
from unlearning.methods.registry import MethodSpec, register_method

__all__ = ["GradDiffConfig", "SPEC", "run"]


class GradDiffConfig(ApproximateConfig):
    """Gradient difference: -NLL(forget) + retain_weight · NLL(retain)."""

    retain_weight: float = Field(1.0, ge=0.0, le=1000.0, description="weight of the NLL on retained records")


def run(config: GradDiffConfig, remedy: RemedyInput, on_step: StepCallback | None = None) -> RemedyOutcome:
    """Minimize -NLL(forget) + w·NLL(retain) for `config.steps` steps; write the new adapter to out_dir."""

    def objective(terms: BatchTerms):
        return grad_diff_loss(terms.forget_nll, terms.retain_nll, config.retain_weight)

    return run_approximate("grad_diff", config, remedy, objective, uses_retain=config.retain_weight > 0,
                           on_step=on_step)


SPEC = register_method(MethodSpec(name="grad_diff", kind=MethodKind.APPROXIMATE, config_class=GradDiffConfig,
                                  run=run))
