"""Rollouts: G images per prompt from the compiled sampler, decoded to pixels for the rewards.

One call turns P prompts into a rollout batch of B = P * G rows, prompt-major (rows
[i*G, (i+1)*G) share prompt i). For sampling, prompts are left-padded to a length bucket
(`decode.length_buckets`, so a stage compiles its sampler once) and the sampler masks the
padding; it runs inside one jit over the sharded policy params with the batch sharded like
pretraining batches. Sampling uses each row's task temperature (`rl.t2i_temperature`,
`rl.edit_temperature`) and `rl.top_k`. By default it samples without guidance, so the policy
the loss scores is the policy that drew the rollouts. With `rl.rollout_guidance` it samples
with the eval's guidance (`decode.cfg_scale`, `decode.edit_text_scale`,
`decode.edit_image_scale`), one call per task: the rewards then score what the eval scores,
while the loss still scores the conditional model, so the update is off-policy by the guidance
(the importance ratio and the KL are the conditional model's).

The batch the loss reads is right-padded instead (T = prompt bucket + H*W + 1): each row is its
prompt, the H*W codes and <eoi>, then <pad>s, so the teacher-forced forward needs no attention
mask and sees exactly the positions the sampler used.
  tokens [B, T] int32
  loss_mask [B, T-1] f32  1 where the target is a generated image code
  temperature [B] f32
  generated [B, H*W+1]    host only: the sampled tokens (for pixels), dropped before the update
"""
from __future__ import annotations

import bisect
import itertools
from typing import Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from arm_jax import sharding as shd
from arm_jax.decode import constraints as cons
from arm_jax.decode import sampler
from arm_jax.decode.guidance import branches, kind_for
from arm_jax.errors import UserError
from arm_jax.model.vocab import VocabLayout
from arm_jax.rl.prompts import Prompt


class Codec(Protocol):
  """The visual tokenizer as the rollouts use it."""

  def encode(self, images: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] uint8 -> [N, h, w] int32 codes."""

  def decode(self, codes: np.ndarray) -> np.ndarray:
    """[N, h, w] int32 codes -> [N, H, W, 3] uint8."""


def left_pad(rows: Sequence[np.ndarray], length: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
  """Ragged int32 rows -> ([N, length] tokens, [N, length] bool real-token mask), right-aligned."""
  tokens = np.full((len(rows), length), pad, np.int32)
  mask = np.zeros((len(rows), length), bool)
  for i, r in enumerate(rows):
    tokens[i, length - len(r):] = r
    mask[i, length - len(r):] = True
  return tokens, mask


class Sampler:
  """Jitted rollout sampling for one policy (graphdef) on a mesh."""

  def __init__(self, graphdef, vocab: VocabLayout, config, mesh, rules):
    self.graphdef = graphdef
    self.vocab = vocab
    self.mesh, self.rules = mesh, rules
    self.buckets = sorted(config.decode.length_buckets)
    self.cache_dtype = jnp.dtype(config.decode.cache_dtype)
    self.temperature = {"t2i": config.rl.t2i_temperature, "edit": config.rl.edit_temperature}
    self.top_k = config.rl.top_k
    d = config.decode
    scales = ({"t2i": (d.cfg_scale, 1.0), "edit": (d.edit_text_scale, d.edit_image_scale)}
              if config.rl.rollout_guidance else {"t2i": (1.0, 1.0), "edit": (1.0, 1.0)})
    # task -> (guidance kind, (text scale, image scale))
    self.guidance = {t: (kind_for(t, *s), s) for t, s in scales.items()}
    self._sample = jax.jit(self._sample_fn, static_argnames=("grid_hw", "guidance"),
                           out_shardings=shd.batch_sharding(mesh, rules, 2))

  def _sample_fn(self, params, batch, scales, *, grid_hw, guidance):
    h, w = grid_hw
    n = batch["temperature"].shape[0]
    kn = sampler.Knobs(batch["temperature"], batch["top_k"], jnp.ones((n,), jnp.float32), scales)
    out = sampler.sample(params, self.graphdef, batch["prompt"], batch["prompt_mask"],
                         jax.random.wrap_key_data(batch["keys"]), max_new=h * w + 1,
                         constraint=cons.image_rows(n, h, w, header_in_prompt=True), kn=kn,
                         guidance=guidance, cache_dtype=self.cache_dtype)
    return out.tokens

  def bucket(self, longest: int) -> int:
    i = bisect.bisect_left(self.buckets, longest)
    if i == len(self.buckets):
      raise UserError(f"an RL prompt of {longest} tokens is longer than the largest of "
                      f"decode.length_buckets {tuple(self.buckets)}; add a bigger bucket")
    return self.buckets[i]

  def __call__(self, params, prompts: Sequence[Prompt], group_size: int, keys: jax.Array,
               grid_hw: tuple[int, int], length: int) -> dict[str, np.ndarray]:
    """This process's P prompts -> its rows of the rollout batch (host arrays).

    keys: [P * G] typed PRNG keys, one per row; length: the prompt bucket (self.bucket of the
    longest prompt of the whole batch, so every process builds the same global shape).
    """
    row_prompts = [p for p in prompts for _ in range(group_size)]
    rows = [p.ids for p in row_prompts]
    tasks = [p.meta.task for p in row_prompts]
    temperature = np.array([self.temperature[t] for t in tasks], np.float32)
    keys = np.asarray(jax.random.key_data(keys))
    new = []
    for task, part in task_runs(tasks):
      kind, scales = self.guidance[task]
      block = row_prompts[part]
      # branch-major: the conditional rows, then each guidance branch's rows
      branch_rows = rows[part] + [p.guidance_ids[b] for b in range(branches(kind) - 1)
                                  for p in block]
      prompt, mask = left_pad(branch_rows, length, self.vocab.pad)
      host = {"prompt": prompt, "prompt_mask": mask, "temperature": temperature[part],
              "top_k": np.full(part.stop - part.start, self.top_k, np.int32),
              "keys": keys[part]}
      with shd.use_mesh(self.mesh, self.rules):
        out = self._sample(params, shd.global_batch(host, self.mesh, self.rules),
                           jnp.asarray(scales, jnp.float32), grid_hw=grid_hw, guidance=kind)
      new.append(to_host(out, self.mesh, self.rules))
    return assemble(self.vocab, rows, np.concatenate(new), temperature, length)


def task_runs(tasks: Sequence[str]) -> list[tuple[str, slice]]:
  """Row tasks -> (task, rows) per task. A task's rows must be contiguous, as the loop lays
  prompts out task by task; the sampler is called once per task since guidance differs."""
  runs, start = [], 0
  for task, group in itertools.groupby(tasks):
    if any(t == task for t, _ in runs):
      raise ValueError(f"rollout rows of task '{task}' are not contiguous")
    n = len(list(group))
    runs.append((task, slice(start, start + n)))
    start += n
  return runs


def to_host(x: jax.Array, mesh, rules) -> np.ndarray:
  """A batch-sharded global array -> this process's rows as numpy."""
  if jax.process_count() == 1:
    return np.asarray(x)
  spec = shd.batch_sharding(mesh, rules, x.ndim).spec
  return np.asarray(multihost_utils.global_array_to_host_local_array(x, mesh, spec))


def assemble(vocab: VocabLayout, rows: Sequence[np.ndarray], new: np.ndarray,
             temperature: np.ndarray, length: int) -> dict[str, np.ndarray]:
  """Prompts (ragged) + generated [B, N] -> the loss's right-padded batch (module docstring)."""
  b, n = new.shape
  tokens = np.full((b, length + n), vocab.pad, np.int32)
  loss_mask = np.zeros((b, length + n - 1), np.float32)
  for i, r in enumerate(rows):
    p = len(r)
    tokens[i, :p], tokens[i, p:p + n] = r, new[i]
    # the target at t+1 = p+j is generated token j; it counts when it is an image code
    loss_mask[i, p - 1:p - 1 + n] = vocab.is_image(new[i])
  return {"tokens": tokens, "loss_mask": loss_mask, "temperature": temperature,
          "generated": new}


def images_of(vocab: VocabLayout, codec: Codec, generated: np.ndarray,
              grid_hw: tuple[int, int]) -> np.ndarray:
  """Sampled tokens [B, H*W+1] (codes then <eoi>) -> [B, H, W, 3] uint8 pixels."""
  h, w = grid_hw
  codes = vocab.ids_to_codes(generated[:, :h * w]).reshape(-1, h, w)
  return np.asarray(codec.decode(codes), np.uint8)
