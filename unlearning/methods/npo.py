"""`npo`: Negative Preference Optimization against the served adapter, plus NLL on retained records."""

from __future__ import annotations

from pydantic import Field

from unlearning.methods.approximate import ApproximateConfig, BatchTerms, run_approximate
from unlearning.methods.base import MethodKind, RemedyInput, RemedyOutcome, StepCallback
from unlearning.methods.losses import npo_loss
from unlearning.methods.registry import MethodSpec, register_method

__all__ = ["NpoConfig", "SPEC", "run"]


class NpoConfig(ApproximateConfig):
    """NPO (Zhang et al. 2024) with the served adapter as reference, plus a retained-data term."""

    # NPO's push fades once the forget texts are unlikely, so it tolerates (and needs) a larger step size.
    learning_rate: float = Field(3e-3, gt=0.0, le=1.0, description="AdamW learning rate")
    beta: float = Field(0.1, gt=0.0, le=100.0, description="inverse temperature of the NPO sigmoid")
    retain_weight: float = Field(1.0, ge=0.0, le=1000.0,
                                 description="weight of the NLL on retained records (0: plain NPO)")


def run(config: NpoConfig, remedy: RemedyInput, on_step: StepCallback | None = None) -> RemedyOutcome:
    """Minimize the NPO loss (+ w·NLL(retain)) for `config.steps` steps; write the new adapter to out_dir."""

    def objective(terms: BatchTerms):
        return npo_loss(terms.forget_logp, terms.reference_logp, config.beta, terms.retain_nll,
                        config.retain_weight)

    return run_approximate("npo", config, remedy, objective, uses_retain=config.retain_weight > 0,
                           on_step=on_step)


SPEC = register_method(MethodSpec(name="npo", kind=MethodKind.APPROXIMATE, config_class=NpoConfig, run=run))
