"""Import Hugging Face SigLIP / SigLIP2 (fixed-resolution) weights into the teacher module.

    params = import_siglip("path/to/siglip2-base-patch16-224", TeacherConfig.from_config(config))

Reads `config.json` + safetensors (pickle checkpoints are refused, see safetensors_io) of a
`SiglipModel` — the layout of every SigLIP checkpoint and of the fixed-resolution SigLIP2 ones
(model_type "siglip"). The variable-resolution SigLIP2 NaFlex models (model_type "siglip2") use
another patch embedding and are refused with a one-line error.

Tensor mapping (HF -> arm_jax/tokenizer/teacher.py):
  *.weight of nn.Linear [out, in]        -> kernel [in, out]
  LayerNorm weight / bias                -> scale / bias
  patch_embedding Conv2d [d, 3, p, p]    -> Linear kernel [p*p*3, d] in (row, col, channel) order
  encoder.layers.{i}.*                   -> encoder.layers.* stacked on a leading layer axis
  head.attention.in_proj_weight [3d, d]  -> q_proj / k_proj / v_proj kernels
"""
from __future__ import annotations

import numpy as np
from flax import nnx
import jax

from arm_jax.errors import UserError
from arm_jax.interop.hf_config import read_hf_config
from arm_jax.interop.safetensors_io import TensorIndex
from arm_jax.tokenizer.teacher import Siglip, TeacherConfig


class SiglipConfigError(UserError):
  """The checkpoint's config.json does not match config.teacher."""


# (HF key in vision_config / text_config, config.teacher key, TeacherConfig getter)
_CHECKS = (
    ("vision_config.hidden_size", "teacher.d_model", lambda t: t.vision.d_model),
    ("vision_config.num_hidden_layers", "teacher.n_layers", lambda t: t.vision.n_layers),
    ("vision_config.num_attention_heads", "teacher.n_heads", lambda t: t.vision.n_heads),
    ("vision_config.intermediate_size", "teacher.d_ff", lambda t: t.vision.d_ff),
    ("vision_config.patch_size", "teacher.patch_size", lambda t: t.patch_size),
    ("vision_config.image_size", "data.image_size", lambda t: t.image_size),
    ("text_config.hidden_size", "teacher.d_model", lambda t: t.text.d_model),
    ("text_config.num_hidden_layers", "teacher.text_layers", lambda t: t.text.n_layers),
    ("text_config.num_attention_heads", "teacher.n_heads", lambda t: t.text.n_heads),
    ("text_config.intermediate_size", "teacher.d_ff", lambda t: t.text.d_ff),
    ("text_config.vocab_size", "teacher.vocab_size", lambda t: t.vocab_size),
    ("text_config.max_position_embeddings", "teacher.text_len", lambda t: t.text_len),
)
_DEFAULTS = {"vision_config.patch_size": 16, "vision_config.image_size": 224,
             "text_config.max_position_embeddings": 64, "text_config.vocab_size": 32000}


def check_config(hf: dict, cfg: TeacherConfig, where: str) -> None:
  """One-line error naming the first config key that disagrees with the checkpoint."""
  if hf.get("model_type") == "siglip2":
    raise SiglipConfigError(f"{where} is a SigLIP2 NaFlex (variable resolution) model; use a "
                            f"fixed-resolution SigLIP or SigLIP2 checkpoint (model_type siglip)")
  if hf.get("model_type") != "siglip":
    raise SiglipConfigError(f"{where} has model_type {hf.get('model_type')!r}, not 'siglip'; "
                            f"give a SiglipModel checkpoint directory")
  if hf.get("vision_config", {}).get("vision_use_head") is False:
    raise SiglipConfigError(f"{where} has no attention-pooling head (vision_use_head=false); "
                            f"the teacher needs the full SiglipModel")
  for hf_key, key, get in _CHECKS:
    section, name = hf_key.split(".")
    value = hf.get(section, {}).get(name, _DEFAULTS.get(hf_key))
    if value != get(cfg):
      raise SiglipConfigError(f"{where}: {hf_key} is {value} but this config gives {get(cfg)}; "
                              f"set --config.{key}={value}")


# ---------------------------------------------------------------------------------------------
# Tensor mapping
# ---------------------------------------------------------------------------------------------

def _linear(idx: TensorIndex, name: str) -> dict:
  return {"kernel": idx.read(f"{name}.weight").T, "bias": idx.read(f"{name}.bias")}


def _norm(idx: TensorIndex, name: str) -> dict:
  return {"scale": idx.read(f"{name}.weight"), "bias": idx.read(f"{name}.bias")}


def _mlp(idx: TensorIndex, name: str) -> dict:
  return {"fc1": _linear(idx, f"{name}.fc1"), "fc2": _linear(idx, f"{name}.fc2")}


def _block(idx: TensorIndex, name: str) -> dict:
  attn = {p: _linear(idx, f"{name}.self_attn.{p}") for p in ("q_proj", "k_proj", "v_proj",
                                                              "out_proj")}
  return {"layer_norm1": _norm(idx, f"{name}.layer_norm1"), "self_attn": attn,
          "layer_norm2": _norm(idx, f"{name}.layer_norm2"), "mlp": _mlp(idx, f"{name}.mlp")}


def _stack(idx: TensorIndex, name: str, n: int) -> dict:
  blocks = [_block(idx, f"{name}.layers.{i}") for i in range(n)]
  return {"layers": jax.tree.map(lambda *xs: np.stack(xs), *blocks)}


def _map_head(idx: TensorIndex, name: str) -> dict:
  w, b = idx.read(f"{name}.attention.in_proj_weight"), idx.read(f"{name}.attention.in_proj_bias")
  q, k, v = np.split(w, 3, axis=0)
  qb, kb, vb = np.split(b, 3)
  attention = {"q_proj": {"kernel": q.T, "bias": qb}, "k_proj": {"kernel": k.T, "bias": kb},
               "v_proj": {"kernel": v.T, "bias": vb},
               "out_proj": _linear(idx, f"{name}.attention.out_proj")}
  return {"probe": idx.read(f"{name}.probe"), "attention": attention,
          "layernorm": _norm(idx, f"{name}.layernorm"), "mlp": _mlp(idx, f"{name}.mlp")}


def _vision(idx: TensorIndex, cfg: TeacherConfig) -> dict:
  conv = idx.read("vision_model.embeddings.patch_embedding.weight")   # [d, c, p, p]
  kernel = conv.transpose(2, 3, 1, 0).reshape(-1, conv.shape[0])
  return {
      "patch_embedding": {"kernel": kernel,
                          "bias": idx.read("vision_model.embeddings.patch_embedding.bias")},
      "position_embedding": idx.read("vision_model.embeddings.position_embedding.weight"),
      "encoder": _stack(idx, "vision_model.encoder", cfg.vision.n_layers),
      "post_layernorm": _norm(idx, "vision_model.post_layernorm"),
  }


def _text(idx: TensorIndex, cfg: TeacherConfig) -> dict:
  return {
      "token_embedding": {"embedding": idx.read("text_model.embeddings.token_embedding.weight")},
      "position_embedding": idx.read("text_model.embeddings.position_embedding.weight"),
      "encoder": _stack(idx, "text_model.encoder", cfg.text.n_layers),
      "final_layer_norm": _norm(idx, "text_model.final_layer_norm"),
      "head": _linear(idx, "text_model.head"),
  }


def import_siglip(directory: str, cfg: TeacherConfig) -> dict:
  """A SiglipModel checkpoint directory -> the teacher's params (pure dict of float32 arrays)."""
  check_config(read_hf_config(directory), cfg, directory)
  idx = TensorIndex.open(directory)
  params = {"vision": _vision(idx, cfg),
            "vision_head": _map_head(idx, "vision_model.head"),
            "text": _text(idx, cfg),
            "logit_scale": idx.read("logit_scale").reshape(()),
            "logit_bias": idx.read("logit_bias").reshape(())}
  _check_shapes(params, cfg, directory)
  return jax.tree.map(lambda x: np.asarray(x, np.float32), params)


def _check_shapes(params: dict, cfg: TeacherConfig, where: str) -> None:
  _, state = nnx.split(nnx.eval_shape(lambda: Siglip(cfg, rngs=nnx.Rngs(0))))
  want = dict(jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(state))[0])
  got = dict(jax.tree_util.tree_flatten_with_path(params)[0])
  for path, w in want.items():
    name = jax.tree_util.keystr(path)
    if path not in got:
      raise SiglipConfigError(f"{where}: nothing maps to teacher parameter {name}")
    if tuple(got[path].shape) != tuple(w.shape):
      raise SiglipConfigError(f"{where}: teacher parameter {name} would get shape "
                              f"{tuple(got[path].shape)}, expected {tuple(w.shape)}")
