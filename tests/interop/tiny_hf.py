"""Tiny random Hugging Face checkpoints built with transformers (no downloads), and the matching
arm_jax config. Import only after `pytest.importorskip("transformers")`."""
from __future__ import annotations

import json
import os

import numpy as np
import torch
import transformers

from arm_jax.config import load_config

TEXT_VOCAB = 96
SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6)


def overrides(**model) -> list[str]:
  """shapes_tiny shrunk to the tiny checkpoints: 20 image codes (FSQ 5x4), 4x4 grid, f32."""
  keys = dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=128,
              text_vocab_size=TEXT_VOCAB, max_grid=4, image_vocab_size=20, rope_theta=10000.0,
              dtype="'float32'")
  keys.update(model)
  return ([f"--config.model.{k}={v}" for k, v in keys.items()] +
          ["--config.tokenizer.fsq_levels=(5,4)", "--config.data.image_size=32",
           "--config.data.dataset=synthetic"])


def config(*extra: str, **model):
  return load_config("shapes_tiny", overrides(**model) + list(extra))


def hf_model(kind: str = "qwen2", tie: bool = False, seed: int = 0, rope_theta=10000.0):
  """A random model whose every weight matters (norms and biases are not at their init)."""
  cls = transformers.Qwen2Config if kind == "qwen2" else transformers.LlamaConfig
  cfg = cls(vocab_size=TEXT_VOCAB, tie_word_embeddings=tie, rope_theta=rope_theta, **SHAPE)
  torch.manual_seed(seed)
  model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.normal_(0.0, 0.05)
      if p.ndim == 1:
        p.add_(1.0)
    # A per-column offset, so "the mean row" is far from zero and new rows can be checked.
    offset = torch.linspace(-0.5, 0.5, SHAPE["hidden_size"])
    model.model.embed_tokens.weight.add_(offset)
    if not tie:
      model.lm_head.weight.add_(offset.flip(0))
  return model


def write_tokenizer(path: str, size: int = TEXT_VOCAB - 6) -> None:
  """A word-level tokenizer.json with `size` ids (fewer than the embedding rows, like Qwen)."""
  from tokenizers import Tokenizer, models, pre_tokenizers
  vocab = {"[UNK]": 0, **{f"w{i}": i for i in range(1, size)}}
  tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  tok.save(os.path.join(path, "tokenizer.json"))


def save(model, path: str, dtype=torch.float32, shard: bool = False) -> str:
  model.to(dtype).save_pretrained(path, safe_serialization=True,
                                  max_shard_size="40KB" if shard else "1GB")
  model.to(torch.float32)
  write_tokenizer(path)
  return path


def load(path: str):
  return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def edit_config_json(path: str, **changes) -> None:
  with open(os.path.join(path, "config.json")) as f:
    cfg = json.load(f)
  cfg.update(changes)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(cfg, f)


def torch_logits(model, tokens: np.ndarray) -> np.ndarray:
  with torch.no_grad():
    return model(torch.tensor(np.asarray(tokens), dtype=torch.long)).logits.float().numpy()


def mixed_tokens(vocab, batch: int = 2, seed: int = 0) -> np.ndarray:
  """text, <boi> <h_2> <w_2> four image codes <eoi>, <eos>, text: [batch, 17] int32."""
  rng = np.random.default_rng(seed)
  rows = []
  for _ in range(batch):
    image = vocab.image_tokens(rng.integers(0, vocab.codebook_size, (2, 2)))
    rows.append(np.concatenate([rng.integers(0, vocab.text_size, 5), image,
                                [vocab.eos], rng.integers(0, vocab.text_size, 3)]))
  return np.stack(rows).astype(np.int32)
