"""Hugging Face Qwen2 / Qwen2.5 / Llama safetensors -> arm_jax decoder params, streamed.

Every decoder leaf becomes a LazyArray assembled from checkpoint slices: per-layer tensors
stacked on a leading `layers` axis, Linear weights transposed to [in, out]. The multimodal
vocabulary is longer than the checkpoint's, so rows past it (specials, image codes) and the
whole image head start at the mean of the checkpoint's rows (embedding, or lm_head for heads)
plus seeded noise (`interop.init_noise` x the rows' std); each new row's noise depends only on
(seed, table, row), so any device slice reads the same values.

    params = import_params(hf_dir, config)            # jax.Arrays on the config's mesh
    import_hf(hf_dir, config, out_dir)                # the `arm-jax import-hf` directory
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from arm_jax import sharding as shd
from arm_jax.interop import hf_layout as L
from arm_jax.interop import tokenizer_files, weights
from arm_jax.interop.hf_config import check_model_keys, model_keys_from_hf, read_hf_config
from arm_jax.interop.lazy_array import LazyArray
from arm_jax.interop.safetensors_io import TensorIndex, check_safe
from arm_jax.model.vocab import VocabLayout

log = logging.getLogger(__name__)

# Noise streams, one per table.
_TAGS = {"embed": 0, "text_head": 1, "image_head": 2, "cell_embed": 3, "cell_head": 4}


@dataclasses.dataclass(frozen=True)
class RowStats:
  """Mean row [d] and the std of all entries of a [rows, d] checkpoint table."""
  mean: np.ndarray
  std: float


def row_stats(index: TensorIndex, name: str, block: int = 4096) -> RowStats:
  """Streams the table in row blocks (float64 sums), never holding it whole."""
  rows, d = index.info(name).shape
  total, total_sq = np.zeros(d), 0.0
  for start in range(0, rows, block):
    x = index.read(name, (slice(start, min(start + block, rows)),)).astype(np.float64)
    total += x.sum(0)
    total_sq += float((x * x).sum())
  mean = total / rows
  var = max(total_sq / (rows * d) - float((mean * mean).mean()), 0.0)
  return RowStats(mean, float(np.sqrt(var)))


def new_rows(stats: RowStats, rows: range, cols: slice, seed: int, tag: int,
             noise: float) -> np.ndarray:
  """Rows [len(rows), cols] of mean + noise * std * N(0, 1), seeded per row."""
  d = stats.mean.shape[0]
  out = np.empty((len(rows), len(range(*cols.indices(d)))), np.float32)
  for k, r in enumerate(rows):
    z = np.random.default_rng((seed, tag, r)).standard_normal(d)
    out[k] = (stats.mean + noise * stats.std * z)[cols]
  return out


def table(index: TensorIndex | None, name: str, n_old: int, n_total: int, stats: RowStats,
          seed: int, tag: int, noise: float, transpose: bool) -> LazyArray:
  """A [n_total, d] table (or its [d, n_total] transpose, for a head's kernel): the first
  `n_old` rows from checkpoint tensor `name`, the rest new."""
  d = stats.mean.shape[0]
  shape = (d, n_total) if transpose else (n_total, d)

  def read(idx):
    rows_s, cols_s = (idx[1], idx[0]) if transpose else idx
    rows, parts = range(rows_s.start, rows_s.stop), []
    old = range(rows.start, min(rows.stop, n_old))
    if len(old):
      parts.append(index.read(name, (slice(old.start, old.stop), cols_s)))
    new = range(max(rows.start, n_old), rows.stop)
    if len(new):
      parts.append(new_rows(stats, new, cols_s, seed, tag, noise))
    block = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return block.T if transpose else block

  return LazyArray(shape, read)


def stacked(index: TensorIndex, t: L.LayerTensor, n_layers: int, per_layer: tuple) -> LazyArray:
  """[layers, *per_layer] from one checkpoint tensor per layer (transposed when a kernel)."""
  def read(idx):
    hf_idx = idx[1:][::-1] if t.transpose else idx[1:]
    out = []
    for i in range(idx[0].start, idx[0].stop):
      x = index.read(t.name(i), hf_idx)
      out.append(x.T if t.transpose else x)
    return np.stack(out)

  return LazyArray((n_layers,) + tuple(per_layer), read)


def plain(index: TensorIndex, name: str, shape: tuple) -> LazyArray:
  return LazyArray(tuple(shape), lambda idx: index.read(name, idx))


# ---------------------------------------------------------------------------------------------

def checkpoint_sources(hf_dir: str, config) -> tuple[dict[str, LazyArray], dict]:
  """({flat leaf name: LazyArray} for every decoder leaf, config.model keys of the checkpoint).

  Refuses a recipe whose config.model disagrees with config.json, and a checkpoint with a
  missing or misshapen tensor, before reading any weights.
  """
  check_safe(hf_dir)
  keys = model_keys_from_hf(read_hf_config(hf_dir), f"{hf_dir}/config.json")
  check_model_keys(keys, config.model, f"the checkpoint's config.json in {hf_dir}")
  index = TensorIndex.open(hf_dir)
  m, i = config.model, config.interop
  vocab = VocabLayout.from_config(m)
  abstract = weights.flatten(weights.abstract_params(config))
  layer_of = {".".join(t.path): t for t in L.layer_tensors(m.qkv_bias)}
  used = set()

  def expect(name, shape):
    index.expect(name, shape)
    used.add(name)

  expect(L.EMBED, (m.text_vocab_size, m.d_model))
  head = L.EMBED if m.tie_embeddings else L.LM_HEAD
  expect(head, (m.text_vocab_size, m.d_model))
  embed_stats = row_stats(index, L.EMBED)
  head_stats = embed_stats if m.tie_embeddings else row_stats(index, head)
  rows = dict(seed=i.init_seed, noise=i.init_noise)
  out = {}
  for name, a in abstract.items():
    if name in layer_of:
      t = layer_of[name]
      per = tuple(a.shape[1:])
      for layer in range(m.n_layers):
        expect(t.name(layer), per[::-1] if t.transpose else per)
      out[name] = stacked(index, t, m.n_layers, per)
    elif name == "embed.embedding":
      out[name] = table(index, L.EMBED, m.text_vocab_size, vocab.embed_rows, embed_stats,
                        tag=_TAGS["embed"], transpose=False, **rows)
    elif name == "text_head.kernel":
      out[name] = table(index, head, m.text_vocab_size, vocab.text_head_size, head_stats,
                        tag=_TAGS["text_head"], transpose=True, **rows)
    elif name == "image_head.kernel":
      out[name] = table(None, "", 0, vocab.codebook_size, head_stats, tag=_TAGS["image_head"],
                        transpose=True, **rows)
    elif name == "cell_embed.embedding":   # fresh: a text checkpoint has no image cells
      out[name] = table(None, "", 0, vocab.cells, embed_stats, tag=_TAGS["cell_embed"],
                        transpose=False, **rows)
    elif name == "cell_head.kernel":
      out[name] = table(None, "", 0, vocab.cells, head_stats, tag=_TAGS["cell_head"],
                        transpose=True, **rows)
    elif name == "final_norm.scale":
      expect(L.FINAL_NORM, a.shape)
      out[name] = plain(index, L.FINAL_NORM, a.shape)
    else:
      # Only a decoder parameter added without its checkpoint name gets here: a bug, not input.
      raise RuntimeError(f"decoder leaf {name} has no Hugging Face counterpart; map it in "
                         f"interop/hf_layout.py and interop/hf_import.py")
  ignored = [n for n in index.names() if n not in used]
  if ignored:
    log.warning("ignoring %d checkpoint tensors the decoder does not use (e.g. %s)",
                len(ignored), ignored[0])
  return out, keys


def import_params(hf_dir: str, config, mesh=None, rules=None) -> dict:
  """Checkpoint -> nnx pure dict of jax.Arrays in model.param_dtype, sharded per the config's
  mesh rules; every device reads only its own slice from disk."""
  from arm_jax.train.pretrain import decoder_fn
  from arm_jax.train.state import param_shardings
  mesh = shd.make_mesh(config.mesh) if mesh is None else mesh
  rules = shd.rules_of(config.mesh) if rules is None else rules
  _, abstract, shardings = param_shardings(decoder_fn(config), mesh, rules)
  sources, _ = checkpoint_sources(hf_dir, config)
  flat_abs, flat_sh = weights.flatten(abstract), weights.flatten(shardings)
  return weights.unflatten({n: src.place(flat_abs[n].dtype, flat_sh[n])
                            for n, src in sources.items()})


def import_hf(hf_dir: str, config, out_dir: str) -> dict:
  """Writes the `arm-jax import-hf` directory (weights.py layout) tensor slice by slice; the
  text tokenizer files are copied beside them. Returns the model_config.json contents."""
  sources, keys = checkpoint_sources(hf_dir, config)
  tok = tokenizer_files.copy_hf_tokenizer(hf_dir, out_dir, config.model.text_vocab_size)
  extra = {"text_tokenizer": tok, "source": {"model_type": read_hf_config(hf_dir)["model_type"]},
           "init": {"seed": config.interop.init_seed, "noise": config.interop.init_noise}}
  # The vocabulary extension fixes these shapes too, so the weights fit only configs with them.
  model = dict(keys, max_grid=config.model.max_grid,
               image_vocab_size=config.model.image_vocab_size)
  weights.save_params(out_dir, sources, config.model.param_dtype, model,
                      config.interop.shard_mb, extra)
  return dict({"model": model}, **extra)
