#!/usr/bin/env python3
"""Loads a Flora GPT-2 checkpoint directory with Hugging Face's GPT2LMHeadModel.from_pretrained and prints
the greedy continuation of a prompt's token ids, for comparison with `flora generate --greedy`.
Usage: hf_interop.py CHECKPOINT_DIR ID,ID,... N"""
import sys

import torch
from transformers import GPT2LMHeadModel

model = GPT2LMHeadModel.from_pretrained(sys.argv[1]).eval()
ids = torch.tensor([[int(i) for i in sys.argv[2].split(",")]])
with torch.no_grad():
    for _ in range(int(sys.argv[3])):
        logits = model(input_ids=ids).logits[0, -1]
        ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
print(",".join(str(i) for i in ids[0].tolist()))
