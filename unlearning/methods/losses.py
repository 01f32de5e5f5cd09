"""Loss math of the approximate methods, as pure functions on tensors (no model, no device choice).

Conventions: `logits` is [batch, time, vocab] from a causal LM, `labels` is [batch, time] with -100 on
padding (as `runtime.token_batches` makes them); position t predicts label t + 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["IGNORE_INDEX", "grad_diff_loss", "gradient_ascent_loss", "npo_loss", "sequence_stats",
           "token_nll"]

IGNORE_INDEX = -100


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL of every next token ([batch, time-1], 0 on padding) and the mask of real tokens."""
    targets = labels[:, 1:]
    # float32 for the softmax: bf16 logits lose the small probabilities that NLL is made of.
    nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORE_INDEX,
                          reduction="none")
    return nll, (targets != IGNORE_INDEX)


def sequence_stats(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence ([batch] each): mean NLL over its real tokens, and its log-likelihood (the sum)."""
    nll, mask = token_nll(logits, labels)
    total = nll.sum(dim=1)
    return total / mask.sum(dim=1).clamp(min=1), -total


def _retain_term(retain_nll: torch.Tensor | None, retain_weight: float) -> torch.Tensor | float:
    if not retain_weight:
        return 0.0
    if retain_nll is None:
        raise ValueError(f"retain_weight={retain_weight} needs the retained texts' NLL")
    return retain_weight * retain_nll.mean()


def gradient_ascent_loss(forget_nll: torch.Tensor) -> torch.Tensor:
    """Minimizing -NLL(forget) pushes the forget texts' likelihood down (unbounded: steps must be few)."""
    return -forget_nll.mean()


def grad_diff_loss(forget_nll: torch.Tensor, retain_nll: torch.Tensor | None,
                   retain_weight: float) -> torch.Tensor:
    """Gradient difference: ascent on the forget texts plus `retain_weight` times NLL on retained ones."""
    return -forget_nll.mean() + _retain_term(retain_nll, retain_weight)


def npo_loss(forget_logp: torch.Tensor, reference_logp: torch.Tensor, beta: float,
             retain_nll: torch.Tensor | None = None, retain_weight: float = 0.0) -> torch.Tensor:
    """Negative Preference Optimization (Zhang et al. 2024) plus an optional retained-data NLL term.

    -(2/β)·mean(logσ(-β·(log πθ(y) - log π_ref(y)))): like ascent while πθ(y) ≥ π_ref(y), but its gradient
    fades as the forget texts become unlikely, so it does not run away the way plain ascent does.
    """
    if beta <= 0:
        raise ValueError(f"NPO needs beta > 0, got {beta}")
    loss = -(2.0 / beta) * F.logsigmoid(-beta * (forget_logp - reference_logp)).mean()
    return loss + _retain_term(retain_nll, retain_weight)
