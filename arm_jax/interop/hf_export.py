"""arm_jax decoder params -> a Hugging Face directory that `transformers` loads as a causal LM.

    OUT/config.json               Qwen2ForCausalLM (LlamaForCausalLM without QKV bias), vocab_size =
                                  the whole multimodal vocabulary
    OUT/model*.safetensors        (+ model.safetensors.index.json when sharded)
    OUT/generation_config.json    bos/eos/pad = the arm_jax specials
    OUT/arm_jax_vocab.json        where specials and image codes sit (for PyTorch-side decoding)
    OUT/tokenizer.json ...        the text tokenizer the model was trained with

lm_head = [text_head ; image_head] rows in vocabulary order, so HF logits == arm_jax logits
index for index. Tensors are fetched one layer at a time (device -> host) and streamed to disk.
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from arm_jax.interop import hf_layout as L
from arm_jax.interop import tokenizer_files, weights
from arm_jax.interop.hf_config import hf_config_from_model
from arm_jax.interop.safetensors_io import TensorSpec, write_sharded
from arm_jax.model.vocab import FIXED_SPECIALS, VocabLayout

VOCAB_JSON = "arm_jax_vocab.json"
_BLOCK = 2**26   # bytes of one streamed block of a large table


def _host(x) -> np.ndarray:
  return np.asarray(jax.device_get(x))


def _row_blocks(table_fn, rows: int, row_bytes: int):
  """Yields a [rows, d] table (computed by table_fn(start, stop)) in bounded row blocks."""
  step = max(1, _BLOCK // max(row_bytes, 1))
  for start in range(0, rows, step):
    yield table_fn(start, min(start + step, rows))


def _lm_head_chunks(flat: dict, model_cfg):
  """[total_vocab, d] = text rows then image rows, each transposed from an [d, n] kernel."""
  vocab = VocabLayout.from_config(model_cfg)
  d = model_cfg.d_model
  if model_cfg.tie_embeddings:
    embed = flat["embed.embedding"]
    yield from _row_blocks(lambda a, b: _host(embed[a:b]), vocab.text_head_size, 4 * d)
  else:
    text = _host(flat["text_head.kernel"])
    yield from _row_blocks(lambda a, b: text[:, a:b].T, vocab.text_head_size, 4 * d)
    del text
  image = _host(flat["image_head.kernel"]).T                       # [codebook, d]
  if vocab.cells > 1:
    yield from _per_cell(image, _host(flat["cell_head.kernel"]).T)
  else:
    yield from _row_blocks(lambda a, b: image[a:b], vocab.image_size, 4 * d)


def _embed_chunks(flat: dict, vocab: VocabLayout, d: int):
  """[total_vocab, d] embedding rows; cell-addressed image ids get code row + cell row."""
  embed = flat["embed.embedding"]
  if vocab.cells == 1:
    yield from _row_blocks(lambda a, b: _host(embed[a:b]), vocab.total_size, 4 * d)
    return
  yield from _row_blocks(lambda a, b: _host(embed[a:b]), vocab.image_offset, 4 * d)
  yield from _per_cell(_host(embed[vocab.image_offset:]), _host(flat["cell_embed.embedding"]))


def _per_cell(codes: np.ndarray, cells: np.ndarray):
  """[codebook, d] code rows, [cells, d] cell rows -> the rows of ids (cell, code), cell-major:
  one [codebook, d] block per cell, code row + that cell's row."""
  for cell in cells:
    yield codes + cell


def hf_tensor_specs(params: dict, model_cfg, dtype) -> list[TensorSpec]:
  """Every tensor of the HF checkpoint, as lazily produced specs (jax or numpy params)."""
  flat = weights.flatten(params)
  vocab = VocabLayout.from_config(model_cfg)
  d, dtype = model_cfg.d_model, jnp.dtype(dtype)
  specs = [TensorSpec(L.EMBED, (vocab.total_size, d), dtype,
                      lambda: _embed_chunks(flat, vocab, d))]
  for i in range(model_cfg.n_layers):
    for t in L.layer_tensors(model_cfg.qkv_bias):
      x = flat[".".join(t.path)]
      shape = tuple(x.shape[1:])[::-1] if t.transpose else tuple(x.shape[1:])
      specs.append(TensorSpec(t.name(i), shape, dtype, lambda x=x, i=i, tr=t.transpose:
                              [_host(x[i]).T if tr else _host(x[i])]))
  specs.append(TensorSpec(L.FINAL_NORM, (d,), dtype, lambda: [_host(flat["final_norm.scale"])]))
  specs.append(TensorSpec(L.LM_HEAD, (vocab.total_size, d), dtype,
                          lambda: _lm_head_chunks(flat, model_cfg)))
  return specs


def vocab_json(config) -> dict:
  """The multimodal vocabulary for PyTorch-side code: special ids, image-code range, grid."""
  v = VocabLayout.from_config(config.model)
  grid = config.data.image_size // config.tokenizer.patch_size
  return {
      "text_size": v.text_size, "image_offset": v.image_offset, "image_size": v.image_size,
      "total_size": v.total_size, "max_grid": v.max_grid,
      "specials": {name: v.special(name) for name in FIXED_SPECIALS},
      "height_token_1": v.height_token(1), "width_token_1": v.width_token(1),
      "image_tokens": "<boi> <h_H> <w_W> H*W codes, row-major <eoi>; id = image_offset + code"
                      + (" + cell * codebook_size (cell: raster index in the grid)"
                         if v.cells > 1 else ""),
      "codebook_size": v.codebook_size, "cell_addressed": v.cell_addressed,
      "default_grid": [grid, grid], "cfg_scale": config.decode.cfg_scale,
  }


def export_params(params: dict, config, out_dir: str, tokenizer_path: str = "") -> list[str]:
  """Writes the Hugging Face directory for `params` (pure dict, jax or numpy); returns the
  names of the files written."""
  m = config.model
  dtype = config.interop.export_dtype or m.param_dtype
  os.makedirs(out_dir, exist_ok=True)
  hf = hf_config_from_model(m, dtype)
  files = write_sharded(out_dir, "model", hf_tensor_specs(params, m, dtype),
                        int(config.interop.shard_mb * 2**20), metadata={"format": "pt"})
  gen = {k: hf[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
  for name, body in (("config.json", hf), ("generation_config.json", gen),
                     (VOCAB_JSON, vocab_json(config))):
    with open(os.path.join(out_dir, name), "w") as f:
      json.dump(body, f, indent=2)
    files.append(name)
  if tokenizer_path:
    files += tokenizer_files.export_text_tokenizer(tokenizer_path, out_dir)
  return files
