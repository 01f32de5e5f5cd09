"""Probe scoring throughput: the batched scoring pass versus a naive per-record loop, and peak memory.

Records are demo-corpus tickets scored under the tiny demo base model with a LoRA adapter whose B
matrices are random (training would not change the cost). Measured: records_per_s of
`score_token_sequences` (both passes, batch --batch-size, longest first) and of the naive loop over the
first --naive-records (per record: full logits with the adapter, full logits without it, whole-vocabulary
log-softmax, one record at a time); ratio_vs_naive compares the two, and the benchmark checks that both
give the same scores. Peak memory: one long record (--long-tokens) under a randomly initialized model
with a 32k vocabulary and a 2k context, scored in a child process once with the default vocabulary
chunking and once with chunking off (all logits of a batch at once); peak RSS above the loaded model.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".lethe-bench"


def progress(message: str) -> None:
    """One line of progress on stderr (stdout carries only the figures)."""
    print(message, file=sys.stderr, flush=True)


def random_lora(model, seed: int = 0):
    """`model` with a LoRA adapter on every Llama linear layer whose B is random (so it changes outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from unlearning.training import LLAMA_TARGET_MODULES

    torch.manual_seed(seed)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=list(LLAMA_TARGET_MODULES), init_lora_weights=False)
    return get_peft_model(model, config).eval()


def naive_scores(model, sequences: list[list[int]], k_fraction: float) -> list[dict]:
    """The straightforward loop: one record at a time, full logits, adapter on then off."""
    import numpy as np
    import torch

    from unlearning.probes.scoring import min_k_plus_plus

    out = []
    with torch.no_grad():
        for ids in sequences:
            x = torch.tensor([ids])
            logprobs = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), -1)
            with model.disable_adapter():
                ref = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), -1)
            target = x[0, 1:]
            logp = logprobs.gather(-1, target[:, None])[:, 0]
            ref_logp = ref.gather(-1, target[:, None])[:, 0]
            probs = logprobs.exp()
            mu = (probs * logprobs).sum(-1)
            sigma = ((probs * logprobs.square()).sum(-1) - mu.square()).clamp(min=1e-12).sqrt()
            correct = (logprobs.argmax(-1) == target).numpy()
            misses = np.flatnonzero(~correct)
            k = 0 if len(misses) == 0 else int(misses[-1]) + 1
            out.append({"nll": float(-logp.mean()), "ref_nll": float(-ref_logp.mean()),
                        "min_k_pp": min_k_plus_plus(((logp - mu) / sigma).numpy(), k_fraction),
                        "es": 1 - k / len(correct), "em": float(correct.mean())})
    return out


def memory_child(mode: str, tokens: int, batch_size: int) -> None:
    """Score one long record under a 32k-vocabulary model; print peak RSS above the loaded model (MiB)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from unlearning.probes.scoring import DEFAULT_VOCAB_CHUNK_ELEMENTS, score_token_sequences

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048)
    model = random_lora(LlamaForCausalLM(config))
    ids = torch.randint(3, 32000, (tokens,), generator=torch.Generator().manual_seed(1)).tolist()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    chunk = DEFAULT_VOCAB_CHUNK_ELEMENTS if mode == "chunked" else 1 << 62
    started = time.perf_counter()
    scores = score_token_sequences(model, [ids], pad_id=0, batch_size=batch_size, vocab_chunk_elements=chunk)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mib": round((peak - before) / 1024, 1), "windows": scores[0].windows,
                      "tokens": len(scores[0].logp), "seconds": round(seconds, 2)}))


def measure_memory(tokens: int, batch_size: int) -> dict:
    """Run the memory child once per mode (fresh processes, so each peak is its own)."""
    figures = {}
    for mode in ("chunked", "unchunked"):
        done = subprocess.run([sys.executable, "-m", "bench.probes", "--memory-child", mode, "--long-tokens",
                               str(tokens), "--batch-size", str(batch_size)], capture_output=True, text=True,
                              cwd=ROOT, check=True)
        figures[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        progress(f"long record, {mode}: {figures[mode]}")
    return figures


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print progress to stderr and the figures as one JSON line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1024)
    parser.add_argument("--naive-records", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--long-tokens", type=int, default=16384)
    parser.add_argument("--memory-child", choices=("chunked", "unchunked"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.long_tokens, args.batch_size)
        return {}
    if min(args.records, args.naive_records, args.batch_size, args.long_tokens) < 1:
        parser.error("--records, --naive-records, --batch-size and --long-tokens must be >= 1")

    import numpy as np
    import torch

    from lethe.demo.corpus import generate_corpus
    from lethe.demo.models import build_demo_base_model
    from unlearning.base_model import load_base_model
    from unlearning.probes.scoring import record_scores, score_token_sequences, text_token_ids

    progress("building (or reusing) the tiny demo base model ...")
    base_dir = build_demo_base_model(STATE / "models" / "base-tiny")
    model, tokenizer = load_base_model(base_dir, device=torch.device("cpu"))
    model = random_lora(model)
    corpus = generate_corpus(customers=max(2, args.records // 3 + 1), seed=3)
    texts = [r["text"] for r in corpus.records][:args.records]
    sequences = text_token_ids(tokenizer, texts)
    tokens = sum(len(s) - 1 for s in sequences)

    progress(f"batched scoring of {len(texts)} records ({tokens} tokens) ...")
    started = time.perf_counter()
    batched = [record_scores(t) for t in score_token_sequences(model, sequences, pad_id=tokenizer.pad_token_id,
                                                                batch_size=args.batch_size)]
    batched_s = time.perf_counter() - started
    progress(f"naive loop over {args.naive_records} records ...")
    started = time.perf_counter()
    naive = naive_scores(model, sequences[:args.naive_records], 0.2)
    naive_s = time.perf_counter() - started
    worst = max(abs(getattr(b, key) - n[key]) for b, n in zip(batched, naive) for key in n)
    if worst > 1e-3:
        raise SystemExit(f"batched and naive scores differ by {worst}: the benchmark compares different things")

    memory = measure_memory(args.long_tokens, 8)
    figures = {
        "benchmark": "probes", "device": "cpu", "threads": torch.get_num_threads(), "records": len(texts),
        "tokens": tokens, "batch_size": args.batch_size,
        "records_per_s": round(len(texts) / batched_s, 1), "tokens_per_s": round(tokens / batched_s),
        "naive_records": len(naive), "naive_records_per_s": round(len(naive) / naive_s, 1),
        "ratio_vs_naive": round((len(texts) / batched_s) / (len(naive) / naive_s), 2),
        "max_abs_score_diff_vs_naive": float(np.float32(worst)),
        "long_record_tokens": args.long_tokens, "long_record_windows": memory["chunked"]["windows"],
        "long_record_peak_mib_chunked": memory["chunked"]["peak_mib"],
        "long_record_peak_mib_unchunked": memory["unchunked"]["peak_mib"],
        "long_record_seconds_chunked": memory["chunked"]["seconds"],
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
