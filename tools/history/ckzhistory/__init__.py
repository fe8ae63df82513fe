"""ckzhistory: make real PyTorch training histories (checkpoint series) for CKZ.

Modules:
  data            Fashion-MNIST and text-corpus loading; deterministic batch streams.
  models          MLP, small CNN, character-level GPT.
  safetensors_io  A minimal hand-written safetensors writer.
  train           Build a run from a config, train, evaluate, save checkpoints, resume.
"""

FORMAT_TAG = "ckz-history-v1"
