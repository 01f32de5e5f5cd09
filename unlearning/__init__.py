"""The torch side of Lethe: base models, LoRA training, adapters, probes.

Importing the package imports no torch; each submodule imports what it needs.
"""
