#!/usr/bin/env python3
"""PyTorch reference for `flora bench train --model llama-1b,llama-3b,llama-7b --weights bf16 ...` (issue 12, item 6).

The shapes of Flora's presets, from transformers.LlamaConfig with random initialisation:
  llama-1b  Llama 3.2 1B: 16 layers, 2048 channels, 32 heads over 8 key/value heads of 64, SwiGLU 8192, vocabulary 128,256, tied
  llama-3b  Llama 3.2 3B: 28 layers, 3072 channels, 24 heads over 8 key/value heads of 128, SwiGLU 8192, vocabulary 128,256, tied
  llama-7b  Llama 2 7B:   32 layers, 4096 channels, 32 heads of 128, SwiGLU 11008, vocabulary 32,000, untied
Rotary base and Llama 3's rope scaling are left at transformers' defaults: they change no shape and no cost.
Weights in bf16 (the model is built in bf16; the optimizers update them in place, rounding to nearest), gradient
checkpointing (as Flora's --activation-checkpointing), SDPA attention, batch 1 x 2048 tokens by default; median step time
of --steps steps after --warmup; peak = torch.cuda.max_memory_allocated after the model is built (weights included).
Optimizers:
  - adamw: torch.optim.AdamW (fused), its moments in the weights' bf16
  - adafactor: transformers' Adafactor without momentum (scale_parameter, no relative step)
  - flora:R: Adafactor with FLORA's compressed momentum in the style of the authors' PyTorch code (bench/torch_gpt2.py's
    FloraReference: per-parameter loop, the current update plus the history decompressed from a rank-R state whose
    Gaussian projection is regenerated each step from a per-parameter seed with torch.Generator)
A configuration that runs out of memory is reported as such (the card has 80 GB) and the next one runs.
Writes a JSON report (--json) in bench/torch_gpt2.py's format, which `flora bench compare` reads.
"""
import argparse
import gc
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.optimization import Adafactor

from torch_gpt2 import FloraReference, label, state_bytes, write_report

SHAPES = {
    "llama-1b": dict(num_hidden_layers=16, hidden_size=2048, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=8,
                     head_dim=64, vocab_size=128256, tie_word_embeddings=True, rms_norm_eps=1e-5),
    "llama-3b": dict(num_hidden_layers=28, hidden_size=3072, intermediate_size=8192, num_attention_heads=24, num_key_value_heads=8,
                     head_dim=128, vocab_size=128256, tie_word_embeddings=True, rms_norm_eps=1e-5),
    "llama-7b": dict(num_hidden_layers=32, hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32,
                     head_dim=128, vocab_size=32000, tie_word_embeddings=False, rms_norm_eps=1e-5),
}


def make_optimizer(name, model):
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-5, fused=True)
    if name == "adafactor":
        return Adafactor(params, lr=1e-3, relative_step=False, scale_parameter=True, warmup_init=False)
    if name.startswith("flora"):
        return FloraReference(params, lr=1e-3, rank=int(name.split(":")[1]))
    raise ValueError(f"unknown optimizer {name!r}: use adamw, adafactor or flora:R")


def build(model_name, seq):
    config = LlamaConfig(max_position_embeddings=max(seq, 4096), use_cache=False, **SHAPES[model_name])
    config._attn_implementation = "sdpa"
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)                      # built in bf16: no fp32 copy of the weights ever exists
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(use_reentrant=False))
    return model.train(), config


def bench(model_name, optimizer_name, batch, seq, warmup, steps, compiled):
    torch.manual_seed(0)
    model, config = build(model_name, seq)
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = make_optimizer(optimizer_name, model)
    step_model = torch.compile(model) if compiled else model
    x = torch.randint(0, config.vocab_size, (batch, seq), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        loss = step_model(input_ids=x, labels=x).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1000
    return dict(model=model_name, optimizer=label(optimizer_name), compiled=compiled, parameters=parameters, millisecondsPerStep=ms,
                tokensPerSecond=batch * seq / (ms / 1000), peakGiB=torch.cuda.max_memory_allocated() / 2**30,
                stateMiB=state_bytes(optimizer) / 2**20, weights="bf16", checkpointing=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="llama-1b,llama-3b,llama-7b")
    parser.add_argument("--optimizers", default="adamw,adafactor,flora:256")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--modes", default="eager", help="eager, compiled, or eager,compiled")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    for model_name in args.models.split(","):
        if model_name not in SHAPES:
            raise SystemExit(f"unknown model {model_name!r}: use {', '.join(SHAPES)}")
        for optimizer_name in args.optimizers.split(","):
            for mode in args.modes.split(","):
                if mode not in ("eager", "compiled"):
                    raise SystemExit(f"unknown mode {mode!r}: use eager or compiled")
                try:
                    row = bench(model_name, optimizer_name, args.batch, args.seq_len, args.warmup, args.steps, mode == "compiled")
                    print(f"{row['model']:9} {row['optimizer']:15} {mode:8} {row['millisecondsPerStep']:8.1f} ms {row['tokensPerSecond']:9,.0f} tok/s "
                          f"peak {row['peakGiB']:6.2f} GiB state {row['stateMiB']:9.1f} MiB ({row['parameters']:,} parameters)", flush=True)
                    rows.append(row)
                except torch.cuda.OutOfMemoryError:
                    print(f"{model_name:9} {label(optimizer_name):15} {mode:8} out of memory (80 GB): not measured", flush=True)
                gc.collect()
                torch.cuda.empty_cache()
                torch._dynamo.reset()
                write_report(args.json, rows, "bf16 weights, gradient checkpointing, SDPA")   # after every row


if __name__ == "__main__":
    main()
