"""Errors of the torch side: base models, training data and adapters."""


class UnlearningError(Exception):
    """Base of the errors raised by `unlearning`."""


class BaseModelError(UnlearningError):
    """The base model directory is missing, unreadable or not a causal LM; the message says what to fix."""


class TrainingDataError(UnlearningError):
    """The texts given for training are unusable (none at all, or empty)."""


class AdapterError(UnlearningError):
    """A LoRA adapter is missing, incompatible with another, or did not change during training."""


class ProbeInputError(UnlearningError):
    """A probe was asked something it cannot answer (empty record, bad span, bad setting); the message says which."""


class RemedyError(UnlearningError):
    """A remedy method is unknown, misconfigured, had nothing to do, or did not change the adapter."""


class TextSpanError(TrainingDataError, ProbeInputError):
    """A text's loss or scoring spans (a chat record's turns) cover no token, or the tokenizer gives no offsets."""
