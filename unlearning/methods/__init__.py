"""Remedies: a registry of methods (exact retraining, gradient-ascent family), verification and escalation.

Each method module registers itself with `unlearning.methods.registry` when it is imported, and this package
imports every method module, so the registry is complete whichever of its modules a caller imports first
(Python runs this file before any submodule). The registry imports none of the methods (peft's
`tuners/__init__.py` pattern). Importing the package imports torch and peft.
"""

from unlearning.methods import grad_diff, gradient_ascent, npo, retrain

__all__ = ["grad_diff", "gradient_ascent", "npo", "retrain"]
