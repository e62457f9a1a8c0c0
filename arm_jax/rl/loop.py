"""The GRPO loop: per iteration, rollouts -> rewards -> advantages -> mu updates; stage by stage.

Why not the shared `train()`: an RL batch depends on the current params (rollouts), is used for
`rl.updates_per_batch` optimizer steps, and the frozen reference must live in the checkpoint.
So this loop reuses the shared pieces directly -- `create_state`, `make_train_step` (the same
jitted, sharded, donated optimizer step as pretraining), `Checkpoints`, `MetricsLog`, SIGTERM
handling -- and its "data iterator" is a pure function of (seed, stage, iteration): prompts and
sampling keys are derived from them, so nothing but the state needs saving.

Checkpoint of a stage (`<workdir>/checkpoints/rl_<k>_<kind>/<iteration>/state`): the train state
{params, opt_state, step, rng} plus `ref_params`. Resume order: newest readable step of the
stage -> continue at its iteration; a finished stage is skipped and its params start the next.
Training N iterations in one go or k, stop, resume, finish gives identical params.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections as mc
import numpy as np
from jax.experimental import multihost_utils

from arm_jax import sharding as shd
from arm_jax.errors import Preempted, UserError
from arm_jax.model.transformer import ModelConfig
from arm_jax.rl import advantages as adv_lib
from arm_jax.rl import credit, grpo, rewards
from arm_jax.rl.prompts import PromptSource
from arm_jax.rl.rollouts import Codec, Sampler, images_of
from arm_jax.rl.schedule import StagePlan, split_prompts
from arm_jax.train.checkpoint import Checkpoints, workdir_lock
from arm_jax.train.loop import NonFiniteLossError, _SigtermFlag
from arm_jax.train.metrics import MetricsLog, read_jsonl
from arm_jax.train.optimizer import learning_rate_schedule, make_optimizer
from arm_jax.train.pretrain import decoder_fn
from arm_jax.train.state import create_state
from arm_jax.train.step import make_train_step


@dataclasses.dataclass
class RLContext:
  """What every stage of a run shares (built once: compiled functions are reused)."""
  config: mc.ConfigDict
  mesh: jax.sharding.Mesh
  rules: tuple
  codec: Codec
  prompts: PromptSource
  grid_hw: tuple[int, int]
  seed: int = 0
  log: Callable[[str], None] = print
  _cache: dict = dataclasses.field(default_factory=dict)

  @property
  def vocab(self):
    return ModelConfig.from_config(self.config.model).vocab


def rl_hparams(config) -> mc.ConfigDict:
  """config.train with RL's lr, constant after warmup (one optimizer step per GRPO update).

  The same for every stage, so one compiled update step serves a whole run (and a study).
  """
  r, t = config.rl, mc.ConfigDict(config.train.to_dict())
  mu = r.updates_per_batch
  t.update(lr=r.lr, steps=_NO_DECAY, warmup_steps=r.warmup_steps * mu, end_lr_factor=1.0,
           grad_accum=r.grad_accum, keep_ckpts=2)
  return t


_NO_DECAY = 2**30   # with end_lr_factor 1 the cosine is flat; the horizon only has to be long
_BATCH_NDIM = {"tokens": 2, "loss_mask": 2, "old_logp": 2, "ref_logp": 2,
               "temperature": 1, "advantages": 2}


# ---------------------------------------------------------------------------------------------
# Compiled pieces, built once per context: the optimizer, the update step, the log-prob pass
# ---------------------------------------------------------------------------------------------

def _optimizer(ctx: RLContext):
  if "tx" not in ctx._cache:
    ctx._cache["tx"] = make_optimizer(rl_hparams(ctx.config))
  return ctx._cache["tx"]


def policy_state(ctx: RLContext, seed: int, params=None):
  """The policy's train state (params, AdamW state, step) and its spec, on ctx's mesh.

  params None -> a fresh init from seed; else those params (seed then only keys the state).
  """
  return create_state(decoder_fn(ctx.config), _optimizer(ctx), ctx.mesh, ctx.rules, seed,
                      params=params)


def _step_fn(ctx: RLContext, spec):
  if "step" not in ctx._cache:
    tcfg = rl_hparams(ctx.config)
    cfg = grpo.GRPOConfig.from_config(ctx.config.rl)
    vocab = ctx.vocab
    example = {k: np.zeros((1,) * n) for k, n in _BATCH_NDIM.items()
               if k != "old_logp" or ctx.config.rl.updates_per_batch > 1}
    loss_fn = lambda model, batch, rng: grpo.grpo_loss(model, batch, rng, cfg=cfg, vocab=vocab)
    ctx._cache["step"] = make_train_step(spec, _optimizer(ctx), loss_fn, ctx.rules,
                                         grad_accum=tcfg.grad_accum,
                                         schedule=learning_rate_schedule(tcfg),
                                         batch_example=example)
  return ctx._cache["step"]


def _logp_fn(ctx: RLContext, spec):
  """(params, ref_params, batch) -> {ref_logp[, old_logp]} [B, T-1], batch-sharded.

  old_logp only when mu > 1 (with one update the loss takes the policy's own, detached).
  """
  if "logp" not in ctx._cache:
    vocab = ctx.vocab
    out = shd.batch_sharding(ctx.mesh, ctx.rules, 2)
    with_old = ctx.config.rl.updates_per_batch > 1

    def logps(params, ref, batch):
      f = lambda p: grpo.image_token_logp(spec.model(p), batch["tokens"], vocab,
                                          batch["temperature"])
      return {"ref_logp": f(ref), **({"old_logp": f(params)} if with_old else {})}
    jitted = jax.jit(logps, out_shardings=out)

    def call(params, ref, batch):
      with shd.use_mesh(ctx.mesh, ctx.rules):
        return jitted(params, ref, batch)
    ctx._cache["logp"] = call
  return ctx._cache["logp"]


def _sampler(ctx: RLContext, spec) -> Sampler:
  if "sampler" not in ctx._cache:
    ctx._cache["sampler"] = Sampler(spec.graphdef, ctx.vocab, ctx.config, ctx.mesh, ctx.rules)
  return ctx._cache["sampler"]


# ---------------------------------------------------------------------------------------------
# One iteration
# ---------------------------------------------------------------------------------------------

def iteration_key(seed: int, plan: StagePlan, it: int) -> jax.Array:
  return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), plan.index), it)


def local_rows(n: int) -> slice:
  """This process's share of n prompts (whole GRPO groups stay on one process)."""
  count, index = jax.process_count(), jax.process_index()
  if n % count:
    raise UserError(f"rl.prompts_per_step per task ({n}) must divide by the {count} processes")
  return slice(index * n // count, (index + 1) * n // count)


def collect(ctx: RLContext, spec, params, plan: StagePlan, it: int) -> tuple[dict, dict]:
  """Rollouts, rewards and advantages of iteration `it` -> (host batch, metrics incl. timings).

  Every process draws the iteration's prompts and keys, then samples, scores and normalises
  its own rows; metrics are this process's.
  """
  r = ctx.config.rl
  t0 = time.perf_counter()
  prompts, keys = [], []
  g = r.group_size
  for k, (task, n) in enumerate(split_prompts(plan.kind, r.prompts_per_step)):
    part = local_rows(n)
    prompts += ctx.prompts.batch(task, n, (ctx.seed, plan.index, it))[part]
    task_keys = jax.random.split(jax.random.fold_in(iteration_key(ctx.seed, plan, it), k), n * g)
    keys.append(task_keys[part.start * g:part.stop * g])
  sampler = _sampler(ctx, spec)
  length = sampler.bucket(max(len(p.ids) for p in prompts))
  length = int(multihost_utils.process_allgather(np.int32(length)).max()) \
      if jax.process_count() > 1 else length
  t1 = time.perf_counter()
  roll = sampler(params, prompts, g, jnp.concatenate(keys), ctx.grid_hw, length)
  t2 = time.perf_counter()
  images = images_of(ctx.vocab, ctx.codec, roll.pop("generated"), ctx.grid_hw)
  t3 = time.perf_counter()
  metas = [p.meta for p in prompts for _ in range(g)]
  total, parts = rewards.score(images, metas, r.rewards)
  t4 = time.perf_counter()
  sample_adv = np.asarray(adv_lib.compute_advantages(r.advantage, total, g))
  cell_adv, cells, cell_metrics = _cell_credit(ctx, images, metas)
  roll["advantages"] = credit.token_advantages(sample_adv, roll["loss_mask"], cell_adv, cells,
                                               r.cell_credit)
  metrics = {"reward": float(total.mean()), "time_prompts_s": t1 - t0,
             "time_sample_s": t2 - t1, "time_decode_s": t3 - t2, "time_score_s": t4 - t3,
             "rollout_tokens": float(roll["loss_mask"].sum())}
  for task in plan.tasks:
    rows = np.array([m.task == task for m in metas])
    metrics[f"reward_{task}"] = float(total[rows].mean())
  for name, values in parts.items():
    if np.isfinite(values).any():
      metrics[f"reward/{name}"] = float(np.nanmean(values))
  return roll, metrics | cell_metrics


def _cell_credit(ctx: RLContext, images: np.ndarray, metas: list):
  """Per-cell advantages of the editing rows (rl/credit.py) -> ([B, cells] NaN elsewhere,
  [h*w] cell of each code, metrics); (None, None, {}) when rl.cell_credit is 0 or no row edits.
  Editing rows come in whole prompt groups (collect lays tasks out group by group)."""
  r = ctx.config.rl
  rows = np.array([i for i, m in enumerate(metas) if m.task == "edit"], np.int64)
  if r.cell_credit == 0 or not len(rows):
    return None, None, {}
  scores = credit.edit_cell_scores(images[rows], [metas[i] for i in rows])
  grid = scores.shape[1]
  cell_adv = np.full((len(metas), grid * grid), np.nan, np.float32)
  cell_adv[rows] = credit.cell_advantages(r.advantage, scores, r.group_size)
  return cell_adv, credit.code_cells(ctx.grid_hw, grid), {"reward/cells": float(scores.mean())}


def update(ctx: RLContext, spec, step_fn, state, ref, host_batch: dict):
  """The mu GRPO updates on one rollout batch -> (state, metrics averaged over the updates)."""
  t0 = time.perf_counter()
  batch = shd.global_batch(host_batch, ctx.mesh, ctx.rules)
  batch.update(_logp_fn(ctx, spec)(state["params"], ref, batch))
  history = []
  for _ in range(ctx.config.rl.updates_per_batch):
    state, m = step_fn(state, batch)
    history.append(m)
  metrics = {k: float(np.mean([jax.device_get(m[k]) for m in history])) for k in history[0]}
  metrics["nonfinite_streak"] = float(jax.device_get(history[-1]["nonfinite_streak"]))
  metrics["time_update_s"] = time.perf_counter() - t0
  return state, metrics


# ---------------------------------------------------------------------------------------------
# A stage, and the schedule
# ---------------------------------------------------------------------------------------------

def run_stage(ctx: RLContext, plan: StagePlan, workdir: str, init_params, sigterm,
              on_log: Callable[[int, dict], None] | None = None):
  """Runs (or resumes) one stage to plan.steps iterations -> (params, last logged metrics)."""
  config = ctx.config
  tcfg = rl_hparams(config)
  state, spec = policy_state(ctx, ctx.seed, init_params)
  # The reference is the policy this stage starts from, in its own buffers (the step donates).
  ref = jax.jit(lambda p: jax.tree.map(jnp.copy, p),
                out_shardings=spec.shardings["params"])(state["params"])
  ckpt = Checkpoints(os.path.join(workdir, "checkpoints", plan.name), keep=tcfg.keep_ckpts,
                     async_save=tcfg.async_ckpt)
  try:
    restored, start, _ = ckpt.restore(dict(spec.abstract, ref_params=spec.abstract["params"]))
    if restored is not None:
      ref = restored.pop("ref_params")
      state = restored
    if start >= plan.steps:
      return state["params"], _last_logged(workdir, plan)
    state = _iterate(ctx, spec, plan, workdir, state, ref, start, ckpt, sigterm, on_log)
  finally:
    ckpt.close()
  return state["params"], _last_logged(workdir, plan)


def _iterate(ctx, spec, plan, workdir, state, ref, start, ckpt, sigterm, on_log):
  config = ctx.config
  step_fn = _step_fn(ctx, spec)
  log = MetricsLog(workdir, plan.name)
  try:
    for it in range(start, plan.steps):
      host_batch, metrics = collect(ctx, spec, state["params"], plan, it)
      state, upd = update(ctx, spec, step_fn, state, ref, host_batch)
      metrics.update(upd)
      metrics["rollout_tokens_per_s"] = metrics["rollout_tokens"] / metrics["time_sample_s"]
      done = it + 1
      _check_finite(metrics, rl_hparams(config), done)
      log.update(metrics)
      if done % config.rl.log_every == 0 or done == plan.steps:
        values = log.write(done)
        if on_log is not None:
          on_log(done, values)
      stop = sigterm.stop_at(done)
      if done % config.rl.ckpt_every == 0 or done == plan.steps or stop:
        ckpt.save(done, dict(state, ref_params=ref), None,
                  {"stage": plan.name, "config": config.to_json()}, force=True)
      if stop and done < plan.steps:
        ckpt.wait()
        raise Preempted(done, ckpt.directory)
  finally:
    log.close()
  return state


def _last_logged(workdir: str, plan: StagePlan) -> dict:
  path = os.path.join(workdir, "metrics", f"{plan.name}.jsonl")
  rows = read_jsonl(path) if os.path.exists(path) else []
  return rows[-1] if rows else {}


def _check_finite(metrics: dict, tcfg, it: int) -> None:
  streak = int(metrics["nonfinite_streak"])
  if streak >= tcfg.max_nan_steps:
    raise NonFiniteLossError(
        f"GRPO loss or gradients were NaN/Inf for {streak} consecutive updates (iteration {it}); "
        f"those updates were skipped; lower rl.lr or raise train.max_nan_steps")


def run_schedule(ctx: RLContext, plans: list[StagePlan], workdir: str, init_params,
                 on_stage: Callable[[StagePlan, dict, dict], None] | None = None) -> dict:
  """Runs the stages in order from `init_params` -> {"params", "stages": {name: metrics}}.

  on_stage(plan, params, metrics) is called after each stage (the study evaluates there).
  """
  lock = workdir_lock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
  params, out = init_params, {}
  with lock, _SigtermFlag() as sigterm:
    for plan in plans:
      ctx.log(f"rl stage {plan.name}: {plan.steps} iterations of {'+'.join(plan.tasks)} GRPO")
      params, metrics = run_stage(ctx, plan, workdir, params, sigterm)
      out[plan.name] = metrics
      if on_stage is not None:
        on_stage(plan, params, metrics)
  return {"params": params, "stages": out}
