"""Hugging Face config.json <-> `config.model`, for Qwen2 / Qwen2.5 and Llama-family models.

Import maps a checkpoint's config.json onto the keys of `config.model` and refuses a recipe
that disagrees, naming the key; export writes the config.json that makes `transformers` build
the same network (Qwen2ForCausalLM, or LlamaForCausalLM when there is no QKV bias, since
Qwen2 hard-codes one).
"""
from __future__ import annotations

import json
import math
import os

from arm_jax.config import ConfigError
from arm_jax.errors import UserError
from arm_jax.model.vocab import VocabLayout

# config.model key -> the config.json key it comes from (for error messages).
HF_KEYS = {
    "d_model": "hidden_size", "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
    "n_kv_heads": "num_key_value_heads", "head_dim": "head_dim", "d_ff": "intermediate_size",
    "rope_theta": "rope_theta", "qkv_bias": "attention_bias", "norm_eps": "rms_norm_eps",
    "tie_embeddings": "tie_word_embeddings", "text_vocab_size": "vocab_size",
}
ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}


class HFConfigError(UserError):
  """A config.json this importer cannot map onto the arm_jax decoder."""


def read_hf_config(directory: str) -> dict:
  path = os.path.join(directory, "config.json")
  if not os.path.isfile(path):
    raise HFConfigError(f"no config.json in {directory}; give a Hugging Face model directory "
                        f"(config.json + *.safetensors)")
  with open(path) as f:
    return json.load(f)


def _rope_theta(hf: dict, where: str) -> float:
  params = hf.get("rope_parameters") or {}
  scaling = hf.get("rope_scaling") or {}
  kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
  if kind != "default":
    raise HFConfigError(f"{where} uses rope_type '{kind}'; only plain RoPE (rope_type default) "
                        f"is supported by the arm_jax decoder")
  return float(params.get("rope_theta") or hf.get("rope_theta") or 10000.0)


def model_keys_from_hf(hf: dict, where: str = "config.json") -> dict:
  """config.json -> {config.model key: value}; unsupported features are refused in one line."""
  kind = hf.get("model_type")
  if kind not in ARCHITECTURES:
    raise HFConfigError(f"{where} has model_type '{kind}'; import supports "
                        f"{', '.join(sorted(ARCHITECTURES))} (Qwen2/Qwen2.5 and Llama family)")
  if hf.get("hidden_act", "silu") != "silu":
    raise HFConfigError(f"{where} has hidden_act '{hf['hidden_act']}'; the decoder's MLP is "
                        f"SwiGLU (silu)")
  if hf.get("mlp_bias"):
    raise HFConfigError(f"{where} has mlp_bias=true; the decoder's MLP has no bias")
  if kind == "llama" and hf.get("attention_bias"):
    raise HFConfigError(f"{where} has attention_bias=true, which puts a bias on o_proj too; the "
                        f"decoder has QKV bias only")
  if hf.get("use_sliding_window"):
    raise HFConfigError(f"{where} has use_sliding_window=true; the decoder attends causally "
                        f"over the whole sequence")
  heads = int(hf["num_attention_heads"])
  return {
      "d_model": int(hf["hidden_size"]),
      "n_layers": int(hf["num_hidden_layers"]),
      "n_heads": heads,
      "n_kv_heads": int(hf.get("num_key_value_heads") or heads),
      "head_dim": int(hf.get("head_dim") or hf["hidden_size"] // heads),
      "d_ff": int(hf["intermediate_size"]),
      "rope_theta": _rope_theta(hf, where),
      "qkv_bias": kind == "qwen2",   # Qwen2 always has it; Llama never (refused above)
      "norm_eps": float(hf.get("rms_norm_eps", 1e-6)),
      "tie_embeddings": bool(hf.get("tie_word_embeddings", False)),
      "text_vocab_size": int(hf["vocab_size"]),
  }


def _same(a, b) -> bool:
  if isinstance(a, float) or isinstance(b, float):
    return math.isclose(float(a), float(b), rel_tol=1e-9)
  return a == b


def check_model_keys(keys: dict, model_cfg, source: str) -> None:
  """Refuses the first key where `keys` (what the weights need) and `config.model` differ."""
  for key, want in keys.items():
    have = model_cfg[key]
    if not _same(want, have):
      hint = f" ({HF_KEYS[key]})" if key in HF_KEYS and "config.json" in source else ""
      raise ConfigError(f"{source} needs model.{key}={want!r}{hint} but the config has "
                        f"{have!r}; pass --config.model.{key}={want!r} or use a recipe that "
                        f"matches")


def hf_config_from_model(model_cfg, dtype: str) -> dict:
  """config.json for the exported model: the whole multimodal vocabulary in one lm_head."""
  vocab = VocabLayout.from_config(model_cfg)
  kind = "qwen2" if model_cfg.qkv_bias else "llama"
  theta = float(model_cfg.rope_theta)
  out = {
      "architectures": [ARCHITECTURES[kind]], "model_type": kind,
      "vocab_size": vocab.total_size, "hidden_size": model_cfg.d_model,
      "intermediate_size": model_cfg.d_ff, "num_hidden_layers": model_cfg.n_layers,
      "num_attention_heads": model_cfg.n_heads, "num_key_value_heads": model_cfg.n_kv_heads,
      "head_dim": model_cfg.head_dim, "hidden_act": "silu",
      "max_position_embeddings": model_cfg.max_seq_len, "rms_norm_eps": model_cfg.norm_eps,
      "rope_theta": theta, "rope_parameters": {"rope_type": "default", "rope_theta": theta},
      # The image head is its own matrix, so lm_head never equals the embedding table.
      "tie_word_embeddings": False, "use_cache": True, "attention_dropout": 0.0,
      "bos_token_id": vocab.bos, "eos_token_id": vocab.eos, "pad_token_id": vocab.pad,
      "dtype": dtype, "torch_dtype": dtype,
  }
  if kind == "qwen2":
    out.update(use_sliding_window=False, sliding_window=None, max_window_layers=model_cfg.n_layers)
  else:
    out.update(attention_bias=False, mlp_bias=False)
  return out
