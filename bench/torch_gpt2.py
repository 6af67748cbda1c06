#!/usr/bin/env python3
"""PyTorch reference for `flora bench train --device cuda`.

GPT-2 from transformers.GPT2Config (random init), batch 8 x 1024 tokens, bf16 autocast, SDPA attention,
median step time of 12 steps after the warm-up steps, peak = torch.cuda.max_memory_allocated, optimizer state
in MiB; eager, or with --modes eager,compiled also torch.compile(model) (the speed-minded PyTorch user's choice;
compilation happens in the warm-up, so give it at least 6 steps). Optimizers:
  - AdamW (torch, fused)
  - Adafactor (transformers), without momentum and with momentum 0.9 (scale_parameter, no relative step)
  - Flora r=32 and r=256: FLORA written here in the style of the authors' PyTorch code (a per-parameter
    Python loop over an Adafactor update whose momentum is kept compressed, projections regenerated each
    step from a per-parameter seed with torch.Generator; the official variant: the current update
    uncompressed, the history compressed). It is our own reimplementation for timing, not the official
    package, which is not installed on the benchmark machine.
Writes a JSON report (--json) that `flora bench compare` reads.
"""
import argparse
import json
import math
import statistics
import time

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.optimization import Adafactor

SIZES = {"gpt2-124m": dict(n_layer=12, n_head=12, n_embd=768), "gpt2-350m": dict(n_layer=24, n_head=16, n_embd=1024)}


class FloraReference(torch.optim.Optimizer):
    """Adafactor with compressed momentum, official-code style (see the module docstring)."""

    def __init__(self, params, lr, rank, beta=0.9, kappa=1000, eps=(1e-30, 1e-3), clip=1.0, decay_rate=-0.8):
        super().__init__(params, dict(lr=lr, rank=rank, beta=beta, kappa=kappa, eps=eps, clip=clip, decay_rate=decay_rate))
        seed = 0
        for group in self.param_groups:
            for p in group["params"]:
                seed += 1
                self.state[p]["seed"] = seed

    @staticmethod
    def _projection(seed, rank, dim, device):
        generator = torch.Generator(device=device).manual_seed(seed)
        return torch.randn((rank, dim), generator=generator, device=device) / math.sqrt(rank)

    @staticmethod
    def _eligible(shape, rank):
        return len(shape) == 2 and min(shape) >= rank and max(shape) <= 4 * min(shape)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            r, b, kappa = group["rank"], group["beta"], group["kappa"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float()
                state = self.state[p]
                if "step" not in state:
                    state["step"] = 0
                    if g.dim() == 2:
                        state["row"] = torch.zeros(g.shape[0], device=g.device)
                        state["col"] = torch.zeros(g.shape[1], device=g.device)
                    else:
                        state["v"] = torch.zeros_like(g)
                    if self._eligible(g.shape, r):
                        shape = (r, g.shape[1]) if g.shape[0] < g.shape[1] else (g.shape[0], r)
                        state["m"] = torch.zeros(shape, device=g.device)
                    else:
                        state["m"] = torch.zeros_like(g)
                state["step"] += 1
                t = state["step"]
                rms_p = p.float().norm() / math.sqrt(p.numel())
                lr = group["lr"] * max(group["eps"][1], rms_p.item())
                beta2 = 1.0 - t ** group["decay_rate"]
                sq = g * g + group["eps"][0]
                if g.dim() == 2:
                    state["row"].mul_(beta2).add_(sq.mean(dim=1), alpha=1 - beta2)
                    state["col"].mul_(beta2).add_(sq.mean(dim=0), alpha=1 - beta2)
                    u = g * (state["row"] / state["row"].mean()).rsqrt().unsqueeze(1) * state["col"].rsqrt().unsqueeze(0)
                else:
                    state["v"].mul_(beta2).add_(sq, alpha=1 - beta2)
                    u = g * state["v"].rsqrt()
                m = state["m"]
                if m.shape == g.shape:
                    m.mul_(b).add_(u, alpha=1 - b)
                    u = m.clone()
                else:
                    rows = g.shape[0] < g.shape[1]          # compress the smaller dimension
                    dim = g.shape[0] if rows else g.shape[1]
                    a_old = self._projection(state["seed"], r, dim, g.device)
                    history = a_old.t() @ m if rows else m @ a_old
                    raw = u
                    u = (1 - b) * raw + b * history
                    if t % kappa == 0:
                        state["seed"] = state["seed"] * 1000003 % (2 ** 31)
                        a_new = self._projection(state["seed"], r, dim, g.device)
                        m.copy_(a_new @ history if rows else history @ a_new.t())
                    else:
                        a_new = a_old
                    compressed = a_new @ raw if rows else raw @ a_new.t()
                    m.mul_(b).add_(compressed, alpha=1 - b)
                u = u / max(1.0, (u.norm() / math.sqrt(u.numel())).item() / group["clip"])
                p.add_(u.to(p.dtype), alpha=-lr)


def make_optimizer(name, model):
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-4, fused=True)
    if name == "adafactor":
        return Adafactor(params, lr=1e-3, relative_step=False, scale_parameter=True, warmup_init=False)
    if name == "adafactor-momentum":
        return Adafactor(params, lr=1e-3, relative_step=False, scale_parameter=True, warmup_init=False, beta1=0.9)
    if name.startswith("flora"):
        return FloraReference(params, lr=1e-3, rank=int(name.split(":")[1]))
    raise ValueError(name)


def label(name):
    return {"adamw": "AdamW (fused)", "adafactor": "adafactor", "adafactor-momentum": "adafactor-momentum"}.get(
        name, name.replace("flora:", "Flora r="))


def state_bytes(optimizer):
    return sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))


def bench(model_name, optimizer_name, batch, seq, warmup, steps, compiled):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50257, n_positions=1024, **SIZES[model_name])
    config._attn_implementation = "sdpa"
    model = GPT2LMHeadModel(config).cuda().train()
    optimizer = make_optimizer(optimizer_name, model)
    if compiled:
        model = torch.compile(model)
    x = torch.randint(0, config.vocab_size, (batch, seq), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1000
    row = dict(model=model_name, optimizer=label(optimizer_name), compiled=compiled, millisecondsPerStep=ms, tokensPerSecond=batch * seq / (ms / 1000),
               peakGiB=torch.cuda.max_memory_allocated() / 2**30, stateMiB=state_bytes(optimizer) / 2**20)
    del model, optimizer, x, loss
    torch.cuda.empty_cache()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gpt2-124m,gpt2-350m")
    parser.add_argument("--optimizers", default="adamw,adafactor,adafactor-momentum,flora:32,flora:256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--modes", default="eager", help="eager, compiled, or eager,compiled")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    for model_name in args.models.split(","):
        for optimizer_name in args.optimizers.split(","):
          for mode in args.modes.split(","):
            if mode not in ("eager", "compiled"):
                raise SystemExit(f"unknown mode {mode!r}: use eager or compiled")
            row = bench(model_name, optimizer_name, args.batch, args.seq_len, args.warmup, args.steps, mode == "compiled")
            print(f"{row['model']:10} {row['optimizer']:22} {mode:8} {row['millisecondsPerStep']:8.1f} ms {row['tokensPerSecond']:10,.0f} tok/s "
                  f"peak {row['peakGiB']:6.2f} GiB state {row['stateMiB']:8.1f} MiB", flush=True)
            rows.append(row)
            torch._dynamo.reset()
            write_report(args.json, rows, "bf16 autocast, SDPA")   # after every row, so a run cut short keeps what it measured


def write_report(path, rows, settings):
    """The JSON report `flora bench compare` reads: the card, the versions and settings, and the rows measured so far."""
    if not path:
        return
    report = dict(device=torch.cuda.get_device_name(), versions=f"PyTorch {torch.__version__}, transformers {transformers.__version__}, {settings}", rows=rows)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
