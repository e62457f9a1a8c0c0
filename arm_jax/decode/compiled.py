"""The sampler, compiled: static (batch, length) buckets, batch sharded over the mesh, donated cache.

Prompts arrive as ragged token lists. They are left-padded to the smallest length bucket that
fits (`config.decode.length_buckets`, capped by the cache `model.max_seq_len`) and the batch is
padded with idle rows to the smallest batch bucket (`config.decode.batch_buckets`); batches
larger than the biggest bucket run in chunks. So `prefill` and `decode` compile once per
(batch bucket, length bucket, max_new, guidance kind) and a new prompt of another length never
recompiles. The decode jit donates its state, so the KV cache is updated in place.
"""
from __future__ import annotations

import bisect
import collections
import functools
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from arm_jax import sharding as shd
from arm_jax.decode import constraints as cons
from arm_jax.decode import sampler
from arm_jax.decode.guidance import branches
from arm_jax.errors import UserError
from arm_jax.model.transformer import ModelConfig


class PromptTooLongError(UserError):
  """A prompt does not fit the KV cache together with the tokens to generate."""


def length_buckets(buckets: Sequence[int], cache: int, max_new: int) -> list[int]:
  """Prompt-length buckets that fit `cache` with `max_new` new tokens (the cap is the last)."""
  cap = cache - max_new
  return sorted({min(b, cap) for b in buckets if b > 0} | {cap}) if cap > 0 else []


def pick_bucket(buckets: Sequence[int], n: int) -> int:
  return buckets[bisect.bisect_left(buckets, n)]


def left_pad(rows: Sequence[Sequence[int]], length: int, pad: int):
  """Ragged token rows -> (tokens [N, length] int32, real-token mask [N, length] bool), each
  row right-aligned so that every row's next token lands in the same cache slot."""
  tokens = np.full((len(rows), length), pad, np.int32)
  mask = np.zeros((len(rows), length), bool)
  for i, row in enumerate(rows):
    if len(row):
      tokens[i, length - len(row):] = row
      mask[i, length - len(row):] = True
  return tokens, mask


# Trace counts of the two jits below: the fallback compilation count where jit has no
# `_cache_size` (a private API); a retrace always means a cache miss.
_TRACES = collections.Counter()


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new", "guidance", "cache_len",
                                             "cache_dtype"))
def _prefill(params, prompt, mask, key_data, constraint, kn, *, graphdef, max_new, guidance,
             cache_len, cache_dtype):
  _TRACES["prefill"] += 1   # runs only when jit traces, i.e. on a cache miss
  return sampler.prefill(nnx.merge(graphdef, params), prompt, mask,
                         jax.random.wrap_key_data(key_data), constraint, kn, max_new=max_new,
                         guidance=guidance, cache_len=cache_len, cache_dtype=cache_dtype)


# The whole state comes back so every donated buffer (the KV cache above all) is aliased to an
# output and updated in place; callers keep only `.out`.
@functools.partial(jax.jit, static_argnames=("graphdef", "guidance"), donate_argnums=(1,))
def _decode(params, state, kn, *, graphdef, guidance):
  _TRACES["decode"] += 1
  return sampler.decode(nnx.merge(graphdef, params), state, kn, guidance=guidance)


class CompiledSampler:
  """Bucketed, sharded, compiled sampling for one decoder's params.

  graphdef/params: the decoder as `nnx.split` gives it (params a pure dict); config: the run
  config (model, decode and mesh sections are read).
  """

  def __init__(self, graphdef, params, config, *, mesh=None, rules=None):
    from arm_jax.train.pretrain import decoder_fn
    from arm_jax.train.state import param_shardings
    self.graphdef = graphdef
    self.config = config
    self.mesh = shd.make_mesh(config.mesh) if mesh is None else mesh
    self.rules = shd.rules_of(config.mesh) if rules is None else rules
    self.vocab = ModelConfig.from_config(config.model).vocab
    self.cache_len = config.model.max_seq_len
    self.cache_dtype = jnp.dtype(config.decode.cache_dtype)
    self.batch_buckets = sorted(config.decode.batch_buckets)
    _, _, p_sh = param_shardings(decoder_fn(config), self.mesh, self.rules)
    self.params = jax.device_put(params, p_sh)

  def compilations(self) -> int:
    """Executables compiled so far for (prefill, decode), by any CompiledSampler in this
    process: they share one jit each, so a second model of the same architecture (another
    checkpoint) reuses the first one's executables. Tests count these."""
    if all(hasattr(f, "_cache_size") for f in (_prefill, _decode)):
      return _prefill._cache_size() + _decode._cache_size()
    return _TRACES["prefill"] + _TRACES["decode"]

  # --- host side ---------------------------------------------------------------------------------
  def __call__(self, rows: Sequence[Sequence[int]], constraint: cons.Constraint,
               keys: jax.Array, *, max_new: int, guidance: str = "none", temperature=1.0,
               top_k=0, top_p=1.0, text_scale=1.0, image_scale=1.0,
               with_ttft: bool = False):
    """Samples for `branches(guidance) * B` prompt rows (branch-major token lists).

    constraint: [B] rows (numpy); keys: [B] typed PRNG keys; temperature/top_k/top_p: scalars
    or [B]. Returns numpy `Samples` with [B, max_new] fields (and, with `with_ttft`, the
    seconds until the first token of the first chunk was on the host).
    """
    n_br = branches(guidance)
    batch = len(rows) // n_br
    if batch * n_br != len(rows) or batch == 0:
      raise ValueError(f"{len(rows)} rows do not make {n_br} guidance branches of a batch")
    p_len = self._prompt_bucket(rows, max_new)
    per_row = lambda v, dt: np.broadcast_to(np.asarray(v, dt), (batch,))
    kn_host = (per_row(temperature, np.float32), per_row(top_k, np.int32),
               per_row(top_p, np.float32))
    key_data = np.asarray(jax.random.key_data(keys))
    step = self.batch_buckets[-1]
    outs, ttfts = [], []
    for lo in range(0, batch, step):
      idx = np.arange(lo, min(lo + step, batch))
      res, ttft = self._chunk(rows, idx, batch, n_br, p_len, constraint, key_data, kn_host,
                              (text_scale, image_scale), max_new, guidance, with_ttft)
      outs.append(res)
      ttfts.append(ttft)
    result = sampler.Samples(*(np.concatenate(f) for f in zip(*outs)))
    return (result, ttfts[0]) if with_ttft else result

  def _prompt_bucket(self, rows, max_new: int) -> int:
    longest = max(len(r) for r in rows)
    if min(len(r) for r in rows) == 0:
      raise UserError("a prompt encoded to zero tokens; give a non-empty prompt")
    buckets = length_buckets(self.config.decode.length_buckets, self.cache_len, max_new)
    room = buckets[-1] if buckets else 0
    if longest > room:
      raise PromptTooLongError(
          f"the prompt is {longest} tokens but the KV cache (model.max_seq_len="
          f"{self.cache_len}) leaves room for {room} besides the {max_new} tokens to "
          f"generate; shorten the prompt or raise model.max_seq_len")
    return pick_bucket(buckets, longest)

  def _chunk(self, rows, idx, batch, n_br, p_len, constraint, key_data, kn_host, scales,
             max_new, guidance, with_ttft):
    """One batch bucket of samples `idx` -> (numpy Samples [len(idx)], TTFT seconds or None)."""
    b_pad = pick_bucket(self.batch_buckets, len(idx))
    extra = b_pad - len(idx)
    # Branch-major again, each branch padded with `extra` empty (idle) rows.
    padded = [r for br in range(n_br) for r in [rows[br * batch + i] for i in idx] + [()] * extra]
    prompt, mask = left_pad(padded, p_len, self.vocab.pad)
    # Idle rows start DONE: they draw nothing and never keep the loop running.
    idle = cons.text_rows(extra)._replace(phase=np.full((extra,), cons.DONE, np.int32))
    con = cons.concat([cons.Constraint(*(np.asarray(f)[idx] for f in constraint)), idle])
    pad = lambda a: np.concatenate([a[idx], np.repeat(a[idx[:1]], extra, axis=0)])
    t0 = time.perf_counter()
    with shd.use_mesh(self.mesh, self.rules):
      prompt, mask, keys, con, per_row = self._place(
          (prompt, mask, pad(key_data), con, tuple(pad(a) for a in kn_host)))
      kn = sampler.Knobs(*per_row, jax.device_put(np.asarray(scales, np.float32),
                                                  NamedSharding(self.mesh, PartitionSpec())))
      state = _prefill(self.params, prompt, mask, keys, con, kn, graphdef=self.graphdef,
                       max_new=max_new, guidance=guidance, cache_len=p_len + max_new,
                       cache_dtype=self.cache_dtype)
      ttft = None
      if with_ttft:
        jax.block_until_ready(state.last)
        ttft = time.perf_counter() - t0
      out = _decode(self.params, state, kn, graphdef=self.graphdef, guidance=guidance).out
    return sampler.Samples(*(np.asarray(f)[:len(idx)] for f in out)), ttft

  def _place(self, tree):
    """Arrays with a leading batch/row axis: sharded over the data axes when they divide it."""
    def put(a):
      sharding = shd.batch_sharding(self.mesh, self.rules, a.ndim)
      ways = np.prod([sharding.mesh.shape[ax] for ax in jax.tree.leaves(sharding.spec[0])])
      if a.shape[0] % ways:
        sharding = NamedSharding(self.mesh, PartitionSpec())
      return jax.device_put(a, sharding)
    return jax.tree.map(put, tree)
