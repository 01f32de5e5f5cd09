"""LoRA's target modules per architecture, on tiny random models of each family built here."""

import pytest
from peft import LoraConfig, get_peft_model

from tests.tiny_families import FAMILIES, tiny_model
from unlearning.architectures import TARGET_MODULES, resolve_target_modules


@pytest.mark.parametrize("family", FAMILIES)
def test_auto_puts_lora_on_every_attention_and_mlp_linear_of_the_family(family, tiny_base_model):
    model, _ = tiny_model(family, tiny_base_model)
    targets = resolve_target_modules(model.config.model_type, ("auto",))
    assert targets == list(TARGET_MODULES[family])
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=targets, task_type="CAUSAL_LM"))
    wrapped = {name.rsplit(".", 1)[-1] for name, module in peft_model.named_modules() if hasattr(module, "lora_A")}
    assert wrapped == set(targets)  # each named layer exists in the family, and got an adapter


def test_configured_names_are_kept_and_an_unknown_architecture_gets_all_linear():
    assert resolve_target_modules("llama", ("q_proj",)) == ["q_proj"]
    assert resolve_target_modules("some_new_lm", ("auto",)) == "all-linear"
