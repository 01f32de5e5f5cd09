"""Which layers of a causal LM get LoRA: the attention and MLP linears of each common architecture.

`target_modules = ("auto",)` (the training config's default) resolves here from the model's `model_type`;
an architecture not in the table gets peft's "all-linear" (every linear layer but the output head). The
names used are what peft writes into the adapter's adapter_config.json.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["AUTO", "TARGET_MODULES", "resolve_target_modules"]

AUTO = "auto"
_LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_NEOX_LIKE = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")
TARGET_MODULES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo", "olmo2",
                     "granite", "smollm3"), _LLAMA_LIKE),
    "mixtral": ("q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3"),
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "phi": ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "gpt_neox": _NEOX_LIKE,
    "falcon": _NEOX_LIKE,
    "opt": ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
}


def resolve_target_modules(model_type: str, configured: Sequence[str]) -> list[str] | str:
    """The configured module names, or for ("auto",) the architecture's (peft's "all-linear" when unknown)."""
    if tuple(configured) != (AUTO,):
        return list(configured)
    return list(TARGET_MODULES.get(model_type, ())) or "all-linear"
