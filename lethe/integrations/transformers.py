"""`LetheLineageCallback`: a transformers (or TRL) training, done outside Lethe, recorded in its lineage.

    from lethe.integrations.transformers import LetheLineageCallback

    trainer = Trainer(model=peft_model, args=args, train_dataset=ds,
                      callbacks=[LetheLineageCallback(dataset_version="tickets:0123abcd4567ef89",
                                                      base_model="models/base")])
    trainer.train()   # at the end: the adapter saved under args.output_dir/lethe-adapter, and recorded

Give it the dataset version the training data came from (`lethe datasets`); it saves the LoRA adapter,
digests it and writes the run, the adapter and its TRAINED_ON shards into the graph (lethe.external_adapters),
with the training arguments that matter. Settings (Neo4j, pepper-free) come from the environment as for the CLI.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from transformers import TrainerCallback

from lethe.external_adapters import ExternalTraining, RegisteredAdapter, register_adapter
from lethe.settings import Settings

__all__ = ["LetheLineageCallback"]

log = logging.getLogger(__name__)
RECORDED_ARGS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                 "gradient_accumulation_steps", "weight_decay", "warmup_steps", "lr_scheduler_type", "bf16",
                 "fp16", "gradient_checkpointing", "seed", "data_seed",
                 "assistant_only_loss")  # TRL's SFTConfig: the loss on the assistant turns (probed the same way)


class LetheLineageCallback(TrainerCallback):
    """Records the adapter a Trainer made when training ends (on the main process only)."""

    def __init__(self, dataset_version: str, base_model: str | Path, *, deployment: str | None = None,
                 endpoint: str | None = None, form: str | None = None, settings: Settings | None = None):
        self.dataset_version, self.base_model = dataset_version, Path(base_model)
        self.deployment, self.endpoint, self.form = deployment, endpoint, form
        self.settings = settings
        self.started_at: datetime | None = None
        self.registered: RegisteredAdapter | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started_at = datetime.now(timezone.utc)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if model is None or not hasattr(model, "peft_config"):
            raise ValueError("LetheLineageCallback records LoRA adapters: the Trainer's model is not a peft model")
        import transformers

        out = Path(args.output_dir) / "lethe-adapter"
        model.save_pretrained(out)
        training = ExternalTraining(
            adapter_dir=out, dataset_version=self.dataset_version, base_model=self.base_model,
            trainer=f"transformers.Trainer {transformers.__version__}",
            config={name: getattr(args, name, None) for name in RECORDED_ARGS}, seed=int(args.seed),
            started_at=self.started_at, ended_at=datetime.now(timezone.utc),
            deployment=self.deployment, endpoint=self.endpoint, form=self.form)
        from lethe import wiring

        with wiring.open_graph(self.settings or Settings()) as graph:
            self.registered = register_adapter(graph, training)
        log.info("Lethe: run %s produced %s (trained on %s, %d shards)", self.registered.run_id,
                 self.registered.adapter_id, self.dataset_version, self.registered.shards)
