"""Lethe's hand-written training loop versus transformers' Trainer, on one demo shard.

The same LoRA fine-tune (the tiny demo base model, the demo corpus's tickets of one shard, the default
LoraTrainingConfig but --epochs) run twice by each engine: seconds per run, steps per second, the final
loss, the held-out loss of the trained adapter, and whether a second run gave the same adapter bytes. Prints
one JSON line of figures last.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".lethe-bench" / "trainer-loop"


def _train(engine: str, base: Path, texts: list[str], epochs: int, out: Path) -> dict:
    from unlearning.base_model import model_dir_sha256
    from unlearning.training import LoraTrainingConfig, train_lora_adapter

    started = time.perf_counter()
    trained = train_lora_adapter(base, texts, LoraTrainingConfig(epochs=epochs, engine=engine), out)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "steps": trained.steps, "final_loss": trained.final_loss,
            "sha256": model_dir_sha256(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=160, help="training texts (one demo shard's worth)")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    from lethe.demo.corpus import generate_corpus
    from lethe.demo.models import build_demo_base_model
    from unlearning.adapters import sequence_nll

    base = build_demo_base_model(ROOT / ".lethe-test" / "models" / "base-tiny")
    records = generate_corpus(customers=200, seed=7).records
    texts, held_out = [r["text"] for r in records[:args.records]], [r["text"] for r in records[-100:]]
    figures: dict[str, dict] = {}
    for engine in ("loop", "trainer"):
        runs = [_train(engine, base, texts, args.epochs, STATE / f"{engine}-{i}") for i in range(2)]
        nll = sequence_nll(base, STATE / f"{engine}-0", held_out)
        figures[engine] = {"seconds": [round(r["seconds"], 2) for r in runs], "steps": runs[0]["steps"],
                           "steps_per_s": round(runs[0]["steps"] / min(r["seconds"] for r in runs), 2),
                           "final_loss": round(runs[0]["final_loss"], 4),
                           "held_out_nll": round(float(sum(nll) / len(nll)), 4),
                           "same_bytes_twice": runs[0]["sha256"] == runs[1]["sha256"]}
        print(f"{engine}: {figures[engine]}", file=sys.stderr, flush=True)
    shutil.rmtree(STATE, ignore_errors=True)
    ratio = min(figures["trainer"]["seconds"]) / min(figures["loop"]["seconds"])
    print(json.dumps({"bench": "trainer_loop", "records": args.records, "epochs": args.epochs, **figures,
                      "trainer_over_loop_seconds": round(ratio, 3)}))


if __name__ == "__main__":
    main()
