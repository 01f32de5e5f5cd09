"""The demo's fictitious customers, their tickets and the tiny base model."""
