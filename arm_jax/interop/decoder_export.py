"""The visual tokenizer's pixel decoder -> a standalone PyTorch module + safetensors.

    OUT/pixel_decoder.py           torch_pixel_decoder.py, copied (torch + safetensors only)
    OUT/pixel_decoder.safetensors  torch names: proj.weight, layers.{i}.self_attn.q_proj.weight ...
    OUT/pixel_decoder.json         widths, grid, patch size, quantizer (FSQ levels or VQ codebook)

Only the decoding path is exported (code vectors -> pixels); the encoder and the semantic branch
stay in JAX. Linear kernels [in, out] become torch weights [out, in]; stacked blocks are split.
"""
from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np

from arm_jax.interop import weights
from arm_jax.interop.safetensors_io import TensorSpec, write_file

MODULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_pixel_decoder.py")
_BLOCK = ("layer_norm1", "layer_norm2", "self_attn.q_proj", "self_attn.k_proj",
          "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")


def _torch_pair(flat: dict, prefix: str, torch_name: str, index=None) -> dict:
  """One nnx Linear/LayerNorm (optionally layer `index` of a stack) -> torch weight and bias."""
  pick = (lambda x: np.asarray(x)) if index is None else (lambda x: np.asarray(x[index]))
  if f"{prefix}.kernel" in flat:
    weight = pick(flat[f"{prefix}.kernel"]).T
  else:
    weight = pick(flat[f"{prefix}.scale"])
  return {f"{torch_name}.weight": weight, f"{torch_name}.bias": pick(flat[f"{prefix}.bias"])}


def decoder_tensors(params: dict) -> dict[str, np.ndarray]:
  """Tokenizer params (nnx pure dict) -> {torch name: float32 array} of the pixel decoder."""
  flat = weights.flatten(params)
  d = "decoder."
  out = {"position_embedding": np.asarray(flat[d + "position_embedding"])}
  out.update(_torch_pair(flat, d + "proj", "proj"))
  out.update(_torch_pair(flat, d + "norm", "norm"))
  out.update(_torch_pair(flat, d + "to_patches", "to_patches"))
  n_layers = flat[d + "blocks.layers.layer_norm1.scale"].shape[0]
  for i in range(n_layers):
    for name in _BLOCK:
      out.update(_torch_pair(flat, f"{d}blocks.layers.{name}", f"layers.{i}.{name}", i))
  if "quantizer.codebook" in flat:   # VQ: the unit codebook the lookup uses
    book = np.asarray(flat["quantizer.codebook"], np.float32)
    out["codebook_unit"] = book / np.maximum(np.linalg.norm(book, axis=-1, keepdims=True), 1e-6)
  return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def decoder_config(config) -> dict:
  """pixel_decoder.json from the config the tokenizer was trained with."""
  from arm_jax.tokenizer.model import TokenizerConfig
  t = TokenizerConfig.from_config(config)
  fsq = t.quantizer == "fsq"
  return {
      "d_model": t.decoder.d_model, "n_layers": t.decoder.n_layers, "n_heads": t.decoder.n_heads,
      "d_ff": t.decoder.d_ff, "norm_eps": t.decoder.norm_eps, "patch_size": t.patch_size,
      "grid": t.grid, "image_size": t.image_size, "quantizer": t.quantizer,
      "fsq_levels": list(t.fsq_levels) if fsq else None,
      "code_dim": len(t.fsq_levels) if fsq else t.vq_dim,
      "codebook_size": math.prod(t.fsq_levels) if fsq else t.vq_codebook_size,
  }


def export_pixel_decoder(params: dict, config, out_dir: str) -> list[str]:
  """Writes the three pixel_decoder.* files; returns their names."""
  os.makedirs(out_dir, exist_ok=True)
  tensors = decoder_tensors(params)
  specs = [TensorSpec(k, v.shape, v.dtype, lambda v=v: [v]) for k, v in tensors.items()]
  write_file(os.path.join(out_dir, "pixel_decoder.safetensors"), specs, {"format": "pt"})
  with open(os.path.join(out_dir, "pixel_decoder.json"), "w") as f:
    json.dump(decoder_config(config), f, indent=2)
  shutil.copyfile(MODULE, os.path.join(out_dir, "pixel_decoder.py"))
  return ["pixel_decoder.safetensors", "pixel_decoder.json", "pixel_decoder.py"]


def load_tokenizer_params(config, workdir: str) -> dict | None:
  """The trained tokenizer's params under `workdir`, or None when there is no such stage."""
  from arm_jax.tokenizer import weights as tok_weights
  from arm_jax.tokenizer.train_tokenizer import STAGE, tokenizer_fn
  if tok_weights.latest_step(workdir, STAGE) is None:
    return None
  return tok_weights.load_params(workdir, STAGE, tokenizer_fn(config), command="train-tokenizer")
