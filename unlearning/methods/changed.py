"""Evidence that a remedy did something: the new adapter differs from the old one and is not a no-op."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from unlearning.adapters import lora_b_all_zero
from unlearning.base_model import model_dir_sha256
from unlearning.errors import RemedyError

__all__ = ["check_adapter_changed"]

WEIGHTS = "adapter_model.safetensors"


def _same_weights(old_dir: Path, new_dir: Path) -> bool:
    old, new = (load_file(Path(d) / WEIGHTS, device="cpu") for d in (old_dir, new_dir))
    return old.keys() == new.keys() and all(torch.equal(old[key], new[key]) for key in old)


def check_adapter_changed(old_dir: Path, new_dir: Path) -> str:
    """The new adapter's digest; RemedyError if it equals the old one or every LoRA B matrix is zero."""
    old_digest, new_digest = model_dir_sha256(old_dir), model_dir_sha256(new_dir)
    if new_digest == old_digest:
        raise RemedyError(f"the new adapter at {new_dir} is byte-identical to the old one at {old_dir} "
                          f"(digest {new_digest[:16]}…): the method did nothing; it cannot count as done")
    if lora_b_all_zero(new_dir):
        # open-unlearning #178: under gradient checkpointing LoRA B can stay zero, a silent no-op.
        raise RemedyError(f"every LoRA B matrix of the new adapter at {new_dir} is zero: it serves the base "
                          "model unchanged and the method did nothing useful; it cannot count as done "
                          "(check that gradients reach the LoRA weights)")
    if _same_weights(old_dir, new_dir):
        # Another manifest alone changes the digest; the weights are what the model serves.
        raise RemedyError(f"the new adapter at {new_dir} has exactly the old LoRA weights of {old_dir} (only "
                          "other files differ): the method did nothing; it cannot count as done")
    return new_digest
