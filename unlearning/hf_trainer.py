"""The same next-token fine-tune as `runtime.fit_causal_lm`, run by transformers' `Trainer`.

Same recorded config, same semantics: AdamW without weight decay, a constant learning rate, no gradient
clipping, seeded shuffles, padding masked out of the loss; bf16 and gradient checkpointing on CUDA.
`bench/trainer_loop.py` measures the two side by side (time, loss, reproducibility).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from unlearning.runtime import compute_dtype, token_batches

__all__ = ["fit_with_trainer"]


class _Sequences(torch.utils.data.Dataset):
    def __init__(self, sequences: Sequence[list[int]], labels: Sequence[list[int]] | None):
        self.sequences = list(sequences)
        self.labels = list(sequences if labels is None else labels)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return {"input_ids": self.sequences[index], "labels": self.labels[index]}


def _collator(pad_id: int) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        # The loop's own padding and labels.
        [batch] = token_batches([r["input_ids"] for r in rows], len(rows), pad_id,
                                labels=[r["labels"] for r in rows])
        return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "labels": batch.labels}
    return collate


class _StepLosses(TrainerCallback):
    def __init__(self, on_step: Callable[[int, float], None] | None):
        self.losses: list[float] = []
        self.on_step = on_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))
            if self.on_step is not None:
                self.on_step(len(self.losses), self.losses[-1])


def _checkpointing(on: bool) -> dict:
    """Activation (gradient) checkpointing under the name this transformers has (5.x renamed it)."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: on, f"{name}_kwargs": {"use_reentrant": False} if on else None}


def _arguments(out: str, *, epochs: int, batch_size: int, learning_rate: float, seed: int,
               device: torch.device, max_steps: int | None) -> TrainingArguments:
    cuda = device.type == "cuda"
    return TrainingArguments(
        output_dir=out, per_device_train_batch_size=batch_size, num_train_epochs=epochs,
        max_steps=max_steps or -1, learning_rate=learning_rate, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, max_grad_norm=0.0, optim="adamw_torch", seed=seed, data_seed=seed,
        bf16=cuda and compute_dtype(device) == torch.bfloat16, use_cpu=not cuda,
        **_checkpointing(cuda),
        report_to=[], save_strategy="no", logging_strategy="steps", logging_steps=1, disable_tqdm=True,
        dataloader_num_workers=0, remove_unused_columns=False)


def fit_with_trainer(model: torch.nn.Module, sequences: Sequence[list[int]], *, pad_id: int, epochs: int,
                     batch_size: int, learning_rate: float, seed: int, device: torch.device,
                     max_steps: int | None = None, on_step: Callable[[int, float], None] | None = None,
                     labels: Sequence[list[int]] | None = None) -> list[float]:
    """Train `model` (a peft model) in place with `Trainer`; returns the loss of every step. `labels` as in
    `runtime.fit_causal_lm`."""
    losses = _StepLosses(on_step)
    with tempfile.TemporaryDirectory(prefix="lethe-trainer-") as out:
        args = _arguments(out, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                          device=device, max_steps=max_steps)
        trainer = Trainer(model=model, args=args, train_dataset=_Sequences(sequences, labels),
                          data_collator=_collator(pad_id), callbacks=[losses])
        trainer.remove_callback(PrinterCallback)  # the losses are returned (and on_step), not printed
        trainer.train()
    model.eval()
    return losses.losses
