"""Remedies: a registry of methods (exact retraining, gradient-ascent family), verification and escalation."""
