"""The train loop every stage shares: resume, step, log, checkpoint, survive SIGTERM and NaNs.

Resume order: lock the workdir -> build the sharded state -> restore the newest readable
checkpoint (state + data iterator position) -> continue at its step. Training N steps in one go
and training k, crashing, resuming and finishing give bit-identical parameters.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from typing import Any, Callable, Iterator

import jax
from jax.experimental import multihost_utils
from tqdm import tqdm

from arm_jax import sharding as shd
from arm_jax.errors import Preempted, UserError
from arm_jax.train import flops as flops_lib
from arm_jax.train.checkpoint import Checkpoints, workdir_lock
from arm_jax.train.metrics import MetricsLog
from arm_jax.train.optimizer import learning_rate_schedule, make_optimizer
from arm_jax.train.state import ModelFn, create_state
from arm_jax.train.step import LossFn, make_train_step


class NonFiniteLossError(UserError):
  """Too many consecutive steps with a NaN/Inf loss or gradient."""


@dataclasses.dataclass
class Stage:
  """What a stage trains: the model, its loss and hyper-parameters (fields of config.train)."""
  name: str
  model_fn: ModelFn
  loss_fn: LossFn
  tcfg: Any
  flops_per_step: float = 0.0   # model FLOPs of one optimizer step, for MFU (0 = not shown)
  tokens_per_step: int = 0      # for tokens/s (0 = not shown)
  meta: dict = dataclasses.field(default_factory=dict)
  # finalize(params, spec, next_batch) -> params: applied once after the last step, before the
  # final checkpoint (the teacher folds its embedding centres into its biases here).
  finalize: Callable | None = None


class _SigtermFlag:
  """SIGTERM -> save at a step every process agrees on, then stop (`stop_at(step)`).

  One process: a Python handler sets a flag the loop reads between steps. Several processes:
  jax.distributed's preemption service owns SIGTERM (initialize() installs its handler; a Python
  one would replace it) and `reached_preemption_sync_point` turns a notice to any one host into
  the same stop step on all of them, so the collective save never waits on a host that trains on.
  """

  def __init__(self):
    self.raised = False
    self._old = None
    self.multi_process = jax.process_count() > 1

  def __enter__(self):
    if self.multi_process:
      return self

    def handler(signum, frame):
      del signum, frame
      self.raised = True
    try:
      self._old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: no handler, the launcher must not send SIGTERM
      self._old = None
    return self

  def stop_at(self, step: int) -> bool:
    """Called once per step on every process (the multi-process protocol needs each step)."""
    if self.multi_process:
      self.raised = multihost_utils.reached_preemption_sync_point(step)
    return self.raised

  def __exit__(self, *exc):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)


_PEAK: dict[str, float] = {}


def _peak_flops() -> float:
  """Measured once per process on the default backend (the MFU denominator)."""
  backend = jax.default_backend()
  if backend not in _PEAK:
    _PEAK[backend] = flops_lib.measure_peak_flops(n=2048 if backend == "cpu" else 8192)
  return _PEAK[backend]


def train(stage: Stage, *, workdir: str, mesh, rules, data_iter: Iterator,
          init_params=None, on_log: Callable[[int, dict], None] | None = None):
  """Runs `stage` to `stage.tcfg.steps`, resuming from `<workdir>/checkpoints/<stage.name>`.

  Returns (state, spec). Raises Preempted on SIGTERM (after saving), NonFiniteLossError after
  `tcfg.max_nan_steps` consecutive non-finite steps (their updates were skipped, so no
  checkpoint ever holds a poisoned update).
  """
  tcfg = stage.tcfg
  # One lock per job: the other processes of a multi-host run share process 0's workdir.
  lock = workdir_lock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
  with lock, _SigtermFlag() as sigterm:
    tx = make_optimizer(tcfg)
    state, spec = create_state(stage.model_fn, tx, mesh, rules, tcfg.seed, params=init_params)
    ckpt = Checkpoints(os.path.join(workdir, "checkpoints", stage.name), keep=tcfg.keep_ckpts,
                       async_save=tcfg.async_ckpt)
    try:
      restored, start, _ = ckpt.restore(spec.abstract, data_iter)
      if restored is not None:
        state = restored
      if start >= tcfg.steps:
        return state, spec
      state = _run(stage, state, spec, tx, ckpt, data_iter, start, rules, sigterm, workdir,
                   on_log)
    finally:
      ckpt.close()
  return state, spec


def _run(stage, state, spec, tx, ckpt, data_iter, start, rules, sigterm, workdir, on_log):
  tcfg = stage.tcfg
  meta = dict(stage.meta, stage=stage.name)
  log = MetricsLog(workdir, stage.name)
  first = next(data_iter)
  step_fn = make_train_step(spec, tx, stage.loss_fn, rules, grad_accum=tcfg.grad_accum,
                            schedule=learning_rate_schedule(tcfg), batch_example=first)
  peak = _peak_flops() if stage.flops_per_step else 0.0
  bar = tqdm(total=tcfg.steps, initial=start, desc=stage.name, unit="step",
             disable=jax.process_index() != 0, dynamic_ncols=True)
  pending, t_last, steps_since = None, time.perf_counter(), 0
  try:
    for step in range(start, tcfg.steps):
      batch = first if step == start else next(data_iter)
      state, metrics = step_fn(state, shd.global_batch(batch, spec.mesh, rules))
      if pending is not None:   # read the previous step's metrics while this one runs
        _check_finite(pending, tcfg, ckpt)
        log.update(pending[1])
      pending = (step + 1, metrics)
      if step == start:   # keep compilation out of the throughput figures
        jax.block_until_ready(metrics)
        t_last, steps_since = time.perf_counter(), -1
      steps_since += 1
      bar.update(1)
      done = step + 1
      if done % tcfg.log_every == 0 or done == tcfg.steps:
        _check_finite(pending, tcfg, ckpt)
        log.update(pending[1])
        pending = None
        dt = time.perf_counter() - t_last
        extra = {"steps_per_s": steps_since / dt}
        if stage.tokens_per_step:
          extra["tokens_per_s"] = stage.tokens_per_step * steps_since / dt
        if stage.flops_per_step and peak:
          extra["mfu"] = stage.flops_per_step * steps_since / dt / peak
        values = log.write(done, extra)
        bar.set_postfix({k: f"{values[k]:.3g}" for k in ("loss", "tokens_per_s", "mfu")
                         if k in values})
        if on_log is not None:
          on_log(done, values)
        t_last, steps_since = time.perf_counter(), 0
      stop = sigterm.stop_at(done)
      if done == tcfg.steps and stage.finalize is not None:
        state = dict(state, params=stage.finalize(
            state["params"], spec, lambda: shd.global_batch(next(data_iter), spec.mesh, rules)))
      if done % tcfg.ckpt_every == 0 or done == tcfg.steps or stop:
        ckpt.save(done, state, data_iter, meta, force=True)
      if stop and done < tcfg.steps:
        ckpt.wait()
        raise Preempted(done, ckpt.directory)
  finally:
    bar.close()
    log.close()
  return state


def _check_finite(pending, tcfg, ckpt) -> None:
  step, metrics = pending
  streak = int(metrics["nonfinite_streak"])
  if streak >= tcfg.max_nan_steps:
    latest = ckpt.latest_step()
    kept = f"the checkpoint at step {latest} is intact" if latest else "no checkpoint was saved"
    raise NonFiniteLossError(
        f"loss or gradients were NaN/Inf for {streak} consecutive steps (up to step {step}); "
        f"those updates were skipped and {kept}; lower train.lr, check the data, or raise "
        f"train.max_nan_steps")
