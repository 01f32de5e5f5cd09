"""The forms an adapter is served in: full precision, bf16, int8 or 4-bit (NF4 or FP4), merged into its base
or applied on a quantized base, built the way serving stacks build them.

Quantization can bring back what unlearning removed (arXiv 2410.16454: 4-bit brought forgotten knowledge
back from 21% to 83%), so the probes score every served form, not only the adapter as trained. Integer
forms go through bitsandbytes, which serving stacks use, on CUDA and (since 0.46) on the CPU. Measured on
this project's 2-core CPU (2026-12-06, torch 2.15, the tiny Llama): bitsandbytes int8 and NF4, torch's
dynamic int8, torchao int8 and optimum-quanto int8/int4 run; torchao int4 needs the mslk kernels and its NF4
tensor is gone; quanto int4 scored 650x slower than NF4. bitsandbytes is the one that is also what runs on
the GPUs that serve.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, model_validator

from unlearning.errors import ProbeInputError

__all__ = ["DEFAULT_FORMS", "FormPair", "ServedForm", "load_served_model", "parse_form", "parse_forms"]


class _NotInt8Casts(logging.Filter):
    """LLM.int8 multiplies in float16 by design and logs it on every call: it says nothing about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("MatMul8bitLt: inputs will be cast")


logging.getLogger("bitsandbytes.autograd._functions").addFilter(_NotInt8Casts())

# Probed when a deployment records no form: what teams most often serve besides the weights as trained.
DEFAULT_FORMS = ("bf16", "int8", "4bit-nf4")
_ALIASES = {"nf4": "4bit-nf4", "fp4": "4bit-fp4", "4bit": "4bit-nf4", "float32": "fp32", "bfloat16": "bf16"}
ON_BASE = "+adapter"  # suffix: the adapter applied on the quantized base (QLoRA-style), not merged into it


class ServedForm(BaseModel):
    """One served form: precision, 4-bit scheme, and whether the adapter is merged into the base first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    precision: Literal["fp32", "bf16", "int8", "4bit"]
    scheme: Literal["nf4", "fp4"] | None = None
    merged: bool = True

    @model_validator(mode="after")
    def _scheme(self) -> ServedForm:
        if (self.precision == "4bit") != (self.scheme is not None):
            raise ValueError("a 4-bit form needs its scheme (nf4 or fp4), and only a 4-bit form has one")
        return self

    @property
    def name(self) -> str:
        """The form's name as deployments record it: fp32, bf16, int8, 4bit-nf4, 4bit-fp4 (+adapter)."""
        base = f"4bit-{self.scheme}" if self.precision == "4bit" else self.precision
        return base if self.merged else base + ON_BASE

    @property
    def quantized(self) -> bool:
        return self.precision in ("int8", "4bit")


def parse_form(text: str) -> ServedForm:
    """A form from its name (fp32, bf16, int8, 4bit-nf4, 4bit-fp4, nf4, fp4; `+adapter` for an adapter on a
    quantized base); ProbeInputError names the value and the accepted ones."""
    if not isinstance(text, str):
        raise ProbeInputError(f"a served form is a name such as int8 or 4bit-nf4, got {text!r}")
    name = text.strip().lower()
    merged = not name.endswith(ON_BASE)
    name = _ALIASES.get(name.removesuffix(ON_BASE), name.removesuffix(ON_BASE))
    precision, _, scheme = name.partition("-")
    try:
        form = ServedForm(precision=precision, scheme=scheme or None, merged=merged)
    except ValueError:
        raise ProbeInputError(f"unknown served form {text!r}; use one of fp32, bf16, int8, 4bit-nf4, 4bit-fp4 "
                              f"(add {ON_BASE} for an adapter served on a quantized base)") from None
    if not form.quantized and not merged:
        raise ProbeInputError(f"served form {text!r}: {ON_BASE} applies to int8 and 4-bit bases only")
    return form


def parse_forms(names) -> tuple[ServedForm, ...]:
    """Distinct forms from their names, in order."""
    return tuple({form.name: form for form in map(parse_form, names)}.values())


def _quantization_config(form: ServedForm, compute_dtype: torch.dtype):
    from transformers import BitsAndBytesConfig

    if form.precision == "int8":
        # lm_head stays in full precision, as bitsandbytes' and transformers' defaults keep it.
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=form.scheme,
                              bnb_4bit_compute_dtype=compute_dtype)


def _load_quantized(model_dir: Path, form: ServedForm, device: torch.device, compute_dtype: torch.dtype):
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(
            model_dir, quantization_config=_quantization_config(form, compute_dtype),
            device_map={"": device.index or 0} if device.type == "cuda" else {"": "cpu"}, dtype=compute_dtype)
    except (ImportError, RuntimeError, ValueError) as exc:  # no bitsandbytes backend for this device
        raise ProbeInputError(f"cannot build the {form.name} form on {device.type}: "
                              f"{str(exc).splitlines()[0][:300]}") from exc


class FormPair(torch.nn.Module):
    """A merged served form beside its base in the same form. The probes' adapter pass runs the first and
    their reference pass (`disable_adapter()`, as on a peft model) the second: the ratio then compares the
    served weights with what the same quantization makes of the base alone."""

    def __init__(self, served: torch.nn.Module, reference: torch.nn.Module):
        super().__init__()
        self.served, self.reference = served, reference
        self._active = served

    @property
    def config(self):
        return self.served.config

    def get_base_model(self) -> torch.nn.Module:
        return self._active

    @contextlib.contextmanager
    def disable_adapter(self) -> Iterator[None]:
        self._active = self.reference
        try:
            yield
        finally:
            self._active = self.served

    def forward(self, *args, **kwargs):
        return self._active(*args, **kwargs)

    def generate(self, *args, **kwargs):
        return self._active.generate(*args, **kwargs)


def _in_form(model_dir: Path, form: ServedForm, device: torch.device, compute_dtype: torch.dtype,
             model: torch.nn.Module | None = None) -> torch.nn.Module:
    """`model` (else the one in `model_dir`) cast or quantized to `form`, in eval mode."""
    from unlearning.base_model import load_base_model

    if not form.quantized:
        model = model if model is not None else load_base_model(model_dir, device=torch.device("cpu"))[0]
        return model.to(device=device, dtype=torch.bfloat16 if form.precision == "bf16" else torch.float32).eval()
    if model is None:
        return _load_quantized(Path(model_dir), form, device, compute_dtype).eval()
    with tempfile.TemporaryDirectory(prefix="lethe-form-") as scratch:  # owner-only; gone when loaded
        model.save_pretrained(scratch)  # bitsandbytes quantizes as it loads, as a serving stack would
        return _load_quantized(Path(scratch), form, device, compute_dtype).eval()


def load_served_model(base_model_dir: Path, adapter_dir: Path, form: ServedForm, device: torch.device,
                      compute_dtype: torch.dtype):
    """The model as `form` serves it, with its reference: the adapter merged into the base, then cast or
    quantized, beside the base in the same form (FormPair); or, for `+adapter` forms, the adapter on the
    quantized base (a peft model: its reference is that base). Returns (model, tokenizer)."""
    from peft import PeftModel

    from unlearning.adapters import load_adapter_model
    from unlearning.base_model import load_base_model

    if not form.merged:
        _, tokenizer = load_base_model(base_model_dir)
        base = _load_quantized(Path(base_model_dir), form, device, compute_dtype)
        return PeftModel.from_pretrained(base, str(adapter_dir)).eval(), tokenizer
    model, tokenizer = load_adapter_model(base_model_dir, adapter_dir, device=torch.device("cpu"))
    served = _in_form(base_model_dir, form, device, compute_dtype, model.merge_and_unload())  # merged in fp32
    return FormPair(served, _in_form(base_model_dir, form, device, compute_dtype)).eval(), tokenizer
