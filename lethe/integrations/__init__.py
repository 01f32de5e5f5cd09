"""Lethe from other tools' side: a transformers TrainerCallback that records a run in the lineage."""
