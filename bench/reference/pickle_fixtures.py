"""Writes the tiny PyTorch pickle checkpoints that test/reliability/plugin-safety.test.ts expects loadModel to refuse.

Run once with Debian's torch: /usr/bin/python3 bench/reference/pickle_fixtures.py
"""
import os
import torch

out = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'reliability', 'fixtures')
os.makedirs(out, exist_ok=True)
state = {'model.embed_tokens.weight': torch.zeros(4, 2)}
torch.save(state, os.path.join(out, 'zip-checkpoint.bin'))  # torch >= 1.6: a zip archive ('PK\x03\x04')
torch.save(state, os.path.join(out, 'legacy-pickle.bin'), _use_new_zipfile_serialization=False)  # raw pickle, protocol 2
print(torch.__version__, sorted(os.listdir(out)))
