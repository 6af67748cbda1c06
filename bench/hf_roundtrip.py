#!/usr/bin/env python3
"""Checks that Hugging Face directories written by `flora export` load in transformers and give Flora's logits.

Usage:
    hf_roundtrip.py DIR [DIR ...]
    hf_roundtrip.py --list FILE          (one directory per line; blank lines and # comments skipped)
Options: --device cpu|cuda (default cpu), --tolerance 1e-4 (max |diff| / max |Flora's logit|).

Each DIR must hold flora_check.safetensors, which `flora export ... --check-ids IDS.safetensors` writes: the input_ids
of IDS (I64 (B, T), such as a fixture's expected.safetensors) and the logits Flora computed for them before the export.
A model directory is loaded with AutoModelForCausalLM.from_pretrained(DIR) in float32 with eager attention. A PEFT
adapter directory (adapter_config.json) is applied to its base_model_name_or_path: with peft when it is installed,
otherwise by PEFT's rule W += lora_alpha / r * B A (r from rank_pattern where given; transposed for GPT-2's Conv1D,
fan_in_fan_out). When the directory has tokenizer files, AutoTokenizer.from_pretrained must load them too.

Making the directories, for example on the GPU machine from the repository root (FLORA is the flora binary):
    FIX=tests/fixtures/hf/models
    for m in gpt2 gpt2-legacy llama llama-sharded llama-bf16 llama-untied qwen2 mistral; do
        $FLORA export --checkpoint $FIX/$m --out /tmp/rt/$m --check-ids $FIX/$m/expected.safetensors; done
    $FLORA export --checkpoint $FIX/llama --out /tmp/rt/llama-shards --max-shard-size 20KB --check-ids $FIX/llama/expected.safetensors
    # fine-tuned models: a small Llama of Flora's with a 300-token BPE, exported, fine-tuned with LoRA from that
    # directory, and exported merged (LoRA as the paper ran it: embeddings and vectors train too) and as a PEFT adapter
    # (adapters only: a PEFT adapter carries nothing else, and flora export refuses a run that trained more); the
    # fixtures' ids are all below 256. (FLORA cannot compress rank-8 adapters of a 64-wide model: its 4:1 shape test
    # refuses them, so these runs use AdamW.)
    $FLORA train --model llama-tiny --tokenizer bpe:300 --steps 30 --out /tmp/rt-runs/base
    $FLORA export --checkpoint /tmp/rt-runs/base --out /tmp/rt/base --check-ids $FIX/llama/expected.safetensors
    $FLORA train --init-from /tmp/rt/base --lora 8 --optimizer adamw --steps 30 --out /tmp/rt-runs/lora
    $FLORA export --checkpoint /tmp/rt-runs/lora --out /tmp/rt/lora-merged --merge-lora --check-ids $FIX/llama/expected.safetensors
    $FLORA train --init-from /tmp/rt/base --lora 8 --lora-adapters-only --optimizer adamw --steps 30 --out /tmp/rt-runs/lora-only
    $FLORA export --checkpoint /tmp/rt-runs/lora-only --out /tmp/rt/lora-peft --peft --check-ids $FIX/llama/expected.safetensors
    python3 bench/hf_roundtrip.py /tmp/rt/*

Prints one line per directory and exits with 1 if any directory fails to load or disagrees.
"""

import argparse
import json
import os
import sys


def load_model(directory, device):
    import torch
    from transformers import AutoModelForCausalLM

    def pretrained(path):
        try:
            m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except TypeError:
            m = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
        try:
            m.set_attn_implementation("eager")
        except Exception:  # noqa: BLE001 - older transformers
            m.config._attn_implementation = "eager"
        return m

    adapter = os.path.join(directory, "adapter_config.json")
    if not os.path.exists(adapter):
        return pretrained(directory).to(device).eval(), "model"
    with open(adapter, encoding="utf-8") as f:
        cfg = json.load(f)
    base = pretrained(cfg["base_model_name_or_path"])
    try:
        from peft import PeftModel
        model = PeftModel.from_pretrained(base, directory).merge_and_unload()
        how = "PEFT adapter (peft)"
    except ImportError:
        from safetensors.torch import load_file
        weights = load_file(os.path.join(directory, "adapter_model.safetensors"))
        modules = dict(base.named_modules())
        pattern = cfg.get("rank_pattern") or {}
        with torch.no_grad():
            for name, a in weights.items():
                if not name.endswith(".lora_A.weight"):
                    continue
                module = name[len("base_model.model."):-len(".lora_A.weight")]
                b = weights[name.replace(".lora_A.weight", ".lora_B.weight")]
                r = pattern.get(module, cfg["r"])
                delta = (cfg["lora_alpha"] / r) * (b.double() @ a.double())      # (out, in)
                w = modules[module].weight
                if cfg.get("fan_in_fan_out"):
                    delta = delta.T                                                 # Conv1D keeps (in, out)
                w.add_(delta.to(w.dtype))
        model = base
        how = "PEFT adapter (merged by hand)"
    return model.to(device).eval(), how


def check(directory, device, tolerance):
    import torch
    from safetensors.torch import load_file
    expected = load_file(os.path.join(directory, "flora_check.safetensors"))
    ids = expected["input_ids"].to(torch.long).to(device)
    model, how = load_model(directory, device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float().cpu()
    flora = expected["logits"].float()
    if logits.shape != flora.shape:
        return False, f"{how}: logits {tuple(logits.shape)} but Flora's are {tuple(flora.shape)}"
    diff = (logits - flora).abs().max().item()
    scale = flora.abs().max().item()
    ok = diff <= tolerance * scale
    detail = f"{how}: max |diff| {diff:.3g}, max |logit| {scale:.3g}, relative {diff / max(scale, 1e-30):.3g}"
    if any(os.path.exists(os.path.join(directory, f)) for f in ("tokenizer.json", "vocab.json", "tokenizer.model")):
        try:
            from transformers import AutoTokenizer
            AutoTokenizer.from_pretrained(directory)
            detail += ", tokenizer loads"
        except Exception as e:  # noqa: BLE001 - report, and fail the directory
            ok = False
            detail += f", tokenizer fails: {type(e).__name__}: {e}"
    return ok, detail


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*")
    parser.add_argument("--list")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    dirs = list(args.dirs)
    if args.list:
        with open(args.list, encoding="utf-8") as f:
            dirs += [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    if not dirs:
        parser.error("no directories")
    failed = 0
    for d in dirs:
        try:
            ok, detail = check(d, args.device, args.tolerance)
        except Exception as e:  # noqa: BLE001 - one directory's failure must not hide the others
            ok, detail = False, f"{type(e).__name__}: {e}"
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {d}: {detail}", flush=True)
    print(f"{len(dirs) - failed} of {len(dirs)} directories load in transformers and give Flora's logits")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
