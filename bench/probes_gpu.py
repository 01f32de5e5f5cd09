"""Probe scoring on a GPU: a randomly initialized ~1.1B-parameter Llama in bf16, tokens/s and share of peak.

The model has TinyLlama-1.1B's shape (22 layers, hidden 2048, MLP 5632, 32 heads, 4 KV heads, 32k
vocabulary) with random weights and a rank-8 LoRA on every linear layer (random B, so the adapter pass
differs from the reference pass). The scoring pass runs both passes over --sequences random sequences of
--length tokens. FLOPs per token and pass are counted as 2 x (parameters touched per token) plus the
attention products (2 x 2 x layers x context x hidden, causal halves it); the share of peak divides the
achieved FLOP/s by the device's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s; A100: 312; L40S: 362;
L4: 121). Without CUDA it prints a line that says it did not run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "GH200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def progress(message: str) -> None:
    """One line of progress on stderr (stdout carries only the figures)."""
    print(message, file=sys.stderr, flush=True)


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a known device, by the model name in its CUDA name."""
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in device_name:
            return PEAK_BF16_TFLOPS[key]
    return None


def timed_scoring(model, sequences, batch_size: int, **options) -> tuple[list, float]:
    """Both passes over `sequences`, and their wall time once the GPU has finished."""
    import torch

    from unlearning.probes.scoring import score_token_sequences

    torch.cuda.synchronize()
    started = time.perf_counter()
    scores = score_token_sequences(model, sequences, pad_id=0, batch_size=batch_size, **options)
    torch.cuda.synchronize()
    return scores, time.perf_counter() - started


def compiled_figures(model, sequences, batch_size: int, chunk: dict, eager_scores, eager_seconds: float) -> dict:
    """The same pass through torch.compile: compile (warm-up) time, tokens/s, speed-up, largest score gap."""
    progress("compiling the scoring pass (both adapter states) ...")
    _, warm_up = timed_scoring(model, sequences[:batch_size], batch_size, compile_model=True, **chunk)
    scores, seconds = timed_scoring(model, sequences, batch_size, compile_model=True, **chunk)
    tokens = sum(len(s.logp) for s in scores)
    gap = max(abs(float(a.logp.mean()) - float(b.logp.mean())) for a, b in zip(scores, eager_scores))
    return {"compiled_warm_up_s": round(warm_up, 1), "compiled_tokens_per_s": round(2 * tokens / seconds),
            "compiled_speedup": round(eager_seconds / seconds, 2),
            "compiled_vs_eager_max_mean_logp_gap": round(gap, 5)}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print progress to stderr and the figures as one JSON line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=512)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--vocab-chunk", type=int, default=None,
                        help="logit elements per vocabulary slice (default: the scoring pass's own choice)")
    parser.add_argument("--compile", action="store_true",
                        help="also score through torch.compile in the same run (compile time, tokens/s, score gap)")
    parser.add_argument("--profile", action="store_true",
                        help="also print the torch profiler's top operators by GPU time to stderr")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        figures = {"benchmark": "probes_gpu", "ran": False, "reason": "no CUDA device on this machine"}
        print(json.dumps(figures))
        return figures
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.probes import random_lora
    from unlearning.probes.scoring import score_token_sequences

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=args.layers,
                         num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                         tie_word_embeddings=False)
    progress("initializing the model on the GPU in bf16 ...")
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model = random_lora(model)
    params = sum(p.numel() for p in model.parameters())
    touched = params - model.get_input_embeddings().weight.numel()  # the embedding is a lookup, not a matmul
    sequences = torch.randint(3, 32000, (args.sequences, args.length), generator=torch.Generator().manual_seed(1))
    sequences = sequences.tolist()
    chunk = {} if args.vocab_chunk is None else {"vocab_chunk_elements": args.vocab_chunk}
    score_token_sequences(model, sequences[:args.batch_size], pad_id=0, batch_size=args.batch_size, **chunk)  # warm-up
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            score_token_sequences(model, sequences[:2 * args.batch_size], pad_id=0, batch_size=args.batch_size,
                                  **chunk)
            torch.cuda.synchronize()
        progress(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    scores, seconds = timed_scoring(model, sequences, args.batch_size, **chunk)
    peak_memory = torch.cuda.max_memory_allocated()
    tokens = sum(len(s.logp) for s in scores)
    attention = 2 * 2 * args.layers * (args.length / 2) * config.hidden_size
    flops = 2 * tokens * (2 * touched + attention)  # two passes
    # Batch independence on the GPU: the first records scored alone give the same scores as in their batch
    # (bf16 matmuls may pick other kernels for other shapes, so agreement is to bf16 rounding, not exact).
    alone = [score_token_sequences(model, [s], pad_id=0, batch_size=1, **chunk)[0] for s in sequences[:4]]
    batch_gap = max(abs(float(a.logp.mean()) - float(b.logp.mean())) for a, b in zip(alone, scores[:4]))
    compiled = compiled_figures(model, sequences, args.batch_size, chunk, scores, seconds) if args.compile else {}
    name = torch.cuda.get_device_name()
    peak = peak_tflops(name)
    achieved = flops / seconds / 1e12
    figures = {
        "benchmark": "probes_gpu", "ran": True, "device": name, "dtype": "bfloat16", "parameters": params,
        "attention": getattr(model.config, "_attn_implementation", None),
        "sequences": args.sequences, "length": args.length, "batch_size": args.batch_size,
        "vocab_chunk_elements": args.vocab_chunk,
        "tokens_per_s": round(2 * tokens / seconds), "scored_tokens_per_s": round(tokens / seconds),
        "seconds": round(seconds, 2), "achieved_tflops": round(achieved, 1), "peak_bf16_tflops": peak,
        "share_of_peak": round(achieved / peak, 3) if peak else None,
        "peak_memory_gib": round(peak_memory / 2**30, 2),
        "batch1_vs_batched_max_mean_logp_gap": round(batch_gap, 5),
        **compiled,
    }
    if compiled and peak:
        figures["compiled_share_of_peak"] = round(achieved * compiled["compiled_speedup"] / peak, 3)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
