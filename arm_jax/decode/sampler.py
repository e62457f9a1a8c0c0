"""The core sampler: prefill the prompt into a KV cache, then a `lax.while_loop` of one-token steps.

Pure functions of arrays (usable inside or outside jit; the RL rollouts call `sample` inside
their own jit). `CompiledSampler` (decode/compiled.py) wraps `prefill` and `decode` in jits
with static buckets, shardings and a donated cache.

Layout. Prompts are left-padded to a common length P (`prompt_mask` marks real tokens), so
every row's next token lands in the same cache slot and one `dynamic_update_slice` writes the
whole batch. Position ids count real tokens only, so padding does not shift RoPE. With
guidance the batch holds `branches * B` rows, branch-major (see decode/guidance.py); the drawn
token of sample b is fed to all of its branch rows.

Returned log-probs are the raw conditional model's, at temperature 1, over the whole vocabulary
(no grammar mask, no guidance, no top-k/p): log softmax(full-branch logits)[token], which is
what a teacher-forced training forward on the same sequence computes, so RL importance ratios
start at exactly 1.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from arm_jax.decode import constraints as cons
from arm_jax.decode.guidance import branches, guide
from arm_jax.decode.sampling import sample_tokens
from arm_jax.errors import UserError
from arm_jax.model.transformer import init_cache
from arm_jax.sharding import constrain

CACHE_AXES = ("layers", "batch", "length", "act_kv_heads", "head_dim")


class Knobs(NamedTuple):
  """Traced sampling settings (changing them never recompiles)."""
  temperature: jax.Array   # [B] float32, 0 = greedy
  top_k: jax.Array         # [B] int32, 0 = off
  top_p: jax.Array         # [B] float32, 1 = off
  scales: jax.Array        # [2] float32: guidance (text, image); t2i uses scales[0]


def knobs(batch: int, *, temperature=1.0, top_k=0, top_p=1.0, text_scale=1.0,
          image_scale=1.0) -> Knobs:
  """Knobs with the same setting for every row (scalars or [batch] arrays)."""
  row = lambda v, dt: jnp.broadcast_to(jnp.asarray(v, dt), (batch,))
  return Knobs(row(temperature, jnp.float32), row(top_k, jnp.int32), row(top_p, jnp.float32),
               jnp.asarray([text_scale, image_scale], jnp.float32))


class Samples(NamedTuple):
  """What the sampler returns; every field is [B, max_new]."""
  tokens: jax.Array     # int32; <pad> after a row stopped
  logprobs: jax.Array   # float32 raw conditional log-probs of `tokens` (0 where not valid)
  valid: jax.Array      # bool: generated before the row stopped (its stop token included)
  image: jax.Array      # bool: the token is an image code


class DecodeState(NamedTuple):
  """The while-loop carry. R = branches * B rows; L = cache length."""
  cache: dict              # {k, v}: [layers, R, kv_heads, L, head_dim]
  key_valid: jax.Array     # [R, L] bool: cache slots holding real tokens
  next_pos: jax.Array      # [R] int32: position id of the token fed next
  slot: jax.Array          # () int32: cache slot of the token fed next
  last: jax.Array          # [B] int32: the token drawn last (fed next)
  step: jax.Array          # () int32: tokens drawn so far
  keys: jax.Array          # [B] PRNG keys, one per sample
  constraint: cons.Constraint
  out: Samples


def row_keys(rng: jax.Array, batch: int) -> jax.Array:
  """One key per sample: a single key is split, a [batch] key array is kept."""
  if jnp.ndim(rng) == 0:
    return jax.random.split(rng, batch)
  return rng


def _emit(model, st: DecodeState, logits_rv: jax.Array, kn: Knobs, kind: str) -> DecodeState:
  """Draws token `st.step` for every sample from the last position's logits [R, V]."""
  vocab = model.cfg.vocab
  b = st.last.shape[0]
  logits = logits_rv.astype(jnp.float32).reshape(-1, b, logits_rv.shape[-1])
  raw_logprobs = jax.nn.log_softmax(logits[0], axis=-1)
  ok = cons.allowed(vocab, st.constraint, logits.shape[-1])
  guided = jnp.where(ok, guide(logits, kind, kn.scales), -jnp.inf)
  keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(st.keys, st.step)
  live = st.constraint.phase != cons.DONE
  token = jnp.where(live, sample_tokens(keys, guided, kn.temperature, kn.top_k, kn.top_p),
                    vocab.pad)
  logprob = jnp.take_along_axis(raw_logprobs, token[:, None], axis=-1)[:, 0]
  col = lambda arr, val: arr.at[:, st.step].set(val)
  out = Samples(col(st.out.tokens, token), col(st.out.logprobs, jnp.where(live, logprob, 0.0)),
                col(st.out.valid, live), col(st.out.image, st.constraint.phase == cons.CODES))
  return st._replace(last=token, step=st.step + 1, out=out,
                     constraint=cons.advance(vocab, st.constraint, token))


def prefill(model, prompt: jax.Array, prompt_mask: jax.Array, rng: jax.Array,
            constraint: cons.Constraint, kn: Knobs, *, max_new: int, guidance: str = "none",
            cache_len: int | None = None, cache_dtype=jnp.bfloat16) -> DecodeState:
  """Runs the prompt through the model and draws the first token.

  prompt, prompt_mask: [R, P] int32 / bool, left-padded, R = branches(guidance) * B;
  rng: one key or [B] keys; constraint: [B] rows (decode/constraints.py).
  cache_len defaults to P + max_new; a smaller one is refused.
  """
  rows, p = prompt.shape
  n_br = branches(guidance)
  batch = rows // n_br
  if rows != n_br * batch:
    raise ValueError(f"{rows} prompt rows do not split into {n_br} guidance branches")
  cache_len = p + max_new if cache_len is None else cache_len
  if p + max_new > cache_len:
    raise UserError(f"the prompt ({p} tokens) plus {max_new} new tokens does not fit the KV "
                    f"cache of {cache_len}; shorten the prompt or generate fewer tokens")
  prompt_mask = prompt_mask.astype(bool)
  positions = jnp.maximum(jnp.cumsum(prompt_mask, axis=1) - 1, 0).astype(jnp.int32)
  key_valid = jnp.zeros((rows, cache_len), bool).at[:, :p].set(prompt_mask)
  q, k = jnp.arange(p)[:, None], jnp.arange(cache_len)[None, :]
  # A padding query attends to itself only, so its (discarded) row never divides by zero.
  mask = (k <= q)[None] & (key_valid[:, None, :] | (k == q)[None])
  cache = jax.tree.map(lambda x: constrain(x, CACHE_AXES),
                       init_cache(model.cfg, rows, cache_len, cache_dtype))
  h, cache = model.hidden(prompt, positions, cache, jnp.int32(0), mask[:, None])
  logits = model.logits(h[:, -1:])[:, 0]
  out = Samples(jnp.full((batch, max_new), model.cfg.vocab.pad, jnp.int32),
                jnp.zeros((batch, max_new), jnp.float32),
                jnp.zeros((batch, max_new), bool), jnp.zeros((batch, max_new), bool))
  constraint = cons.Constraint(*(jnp.asarray(x) for x in constraint))
  st = DecodeState(cache, key_valid, positions[:, -1] + 1, jnp.int32(p),
                   jnp.zeros((batch,), jnp.int32), jnp.int32(0), row_keys(rng, batch),
                   constraint, out)
  return _emit(model, st, logits, kn, guidance)


def decode(model, st: DecodeState, kn: Knobs, *, guidance: str = "none") -> DecodeState:
  """Draws tokens until every row is DONE or `max_new` tokens were drawn."""
  max_new = st.out.tokens.shape[1]
  n_br = branches(guidance)

  def cond(s: DecodeState):
    return (s.step < max_new) & ~jnp.all(s.constraint.phase == cons.DONE)

  def body(s: DecodeState):
    key_valid = s.key_valid.at[:, s.slot].set(True)
    token = jnp.tile(s.last, n_br)[:, None]
    h, cache = model.hidden(token, s.next_pos[:, None], s.cache, s.slot,
                            key_valid[:, None, None, :])
    cache = jax.tree.map(lambda x: constrain(x, CACHE_AXES), cache)
    s = s._replace(cache=cache, key_valid=key_valid, next_pos=s.next_pos + 1, slot=s.slot + 1)
    return _emit(model, s, model.logits(h)[:, 0], kn, guidance)

  return jax.lax.while_loop(cond, body, st)


def sample(params, graphdef, prompt: jax.Array, prompt_mask: jax.Array, rng: jax.Array, *,
           max_new: int, constraint: cons.Constraint, kn: Knobs, guidance: str = "none",
           cache_len: int | None = None, cache_dtype=jnp.bfloat16) -> Samples:
  """prefill + decode in one pure function (the RL rollouts' entry point).

  params: the decoder's nnx pure-dict state; graphdef: its nnx GraphDef.
  prompt, prompt_mask: [branches * B, P] left-padded; rng: a key or [B] keys.
  Returns Samples with [B, max_new] fields.
  """
  from flax import nnx
  model = nnx.merge(graphdef, params)
  st = prefill(model, prompt, prompt_mask, rng, constraint, kn, max_new=max_new,
               guidance=guidance, cache_len=cache_len, cache_dtype=cache_dtype)
  return decode(model, st, kn, guidance=guidance).out
