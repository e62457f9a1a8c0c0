"""Soak: random kill -9 / SIGTERM points across a short demo-sized pretraining and RL run.

    make soak                      # python tests/soak.py; not part of `make test`
    python tests/soak.py --kills 20 --seed 0 --max-minutes 40 --workdir runs/soak

The demo's decoder (configs/shapes_tiny.py: ~1M parameters, batch 32 x 176 tokens) pretrains
on the synthetic source for --steps (80) steps, then runs the demo's GRPO schedule (t2i 4,
edit 3, joint 3 iterations; 4 prompts x 4 rollouts instead of 8 x 8) from its final params:
once uninterrupted (the reference), once under fire. Each attempt of the second run gets one
signal at a random point -- kill -9 or SIGTERM at even odds; one time in four at a random time
within the last attempt's startup (import, restore, compilation), else after 1 to 3 (RL: 1)
further logged steps plus a random fraction of a step, so it lands mid-step, mid-save or
between them -- and is rerun, until --kills signals have landed (75% in pretraining, the rest
in RL; a phase that finishes first passes its share on) or the run ends; then it runs to the
end. Every random choice comes from --seed.

Prints one line per signal, then
  soak: N kills, M resumes, params identical: yes/no
comparing the final pretraining and RL checkpoints (params, optimizer state, RNG, step, data
position) and every RL iteration's prompts with the reference. Exit status 0 when identical.
Bounded: --kills signals, and no signal after --max-minutes (the run is then finished and
compared); each process is given at most 15 minutes.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

PRETRAIN = ["--config.data.dataset=synthetic", "--config.mesh.shape=(1,1,1)",
            "--config.train.log_every=1", "--config.train.ckpt_every=5"]
RL = ("--config.mesh.shape=(1,1,1)", "--config.rl.prompts_per_step=4",
      "--config.rl.group_size=4", "--config.rl.ckpt_every=1")
RL_STAGES = (("t2i", 4), ("edit", 3), ("joint", 3))
PROCESS_LIMIT_S = 900
STARTUP_KILLS = 0.25   # share of signals sent during startup, restore and compilation
# Else the signal lands within the first 1..MAX_AHEAD steps the attempt logs. RL saves every
# iteration (and a SIGTERM saves the one under way), so its 10 iterations take 1 at a time.
MAX_AHEAD = {"pretrain": 3, "rl": 1}
PRETRAIN_SHARE = 0.75  # of the signals; RL takes the rest


class Phase:
  """One trainer command under fire: its metric rows show progress, its checkpoints the point a
  rerun resumes from."""

  def __init__(self, name, cmd, stages, total):
    self.name, self.cmd, self.stages, self.total = name, cmd, stages, total
    self.startup_s, self.step_s = 10.0, 1.0   # replaced by the reference run's timings

  def rows(self, workdir):
    n = 0
    for path in glob.glob(os.path.join(workdir, "metrics", f"{self.name}*.jsonl")):
      with open(path) as f:
        n += sum(1 for _ in f)
    return n

  def done(self, workdir):
    """Steps (RL: iterations) the newest checkpoints hold, summed over the phase's stages."""
    total = 0
    for stage in self.stages:
      d = os.path.join(workdir, "checkpoints", stage)
      steps = [int(s) for s in os.listdir(d) if s.isdigit()] if os.path.isdir(d) else []
      total += max(steps, default=0)
    return total


def _env(root):
  # One compilation cache for every process: a rerun loads what an earlier one compiled.
  return dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", ARM_DISTRIBUTED="0",
              JAX_COMPILATION_CACHE_DIR=os.path.join(root, "xla_cache"),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")


def _start(phase, workdir, root):
  log = open(os.path.join(root, f"{os.path.basename(workdir)}_{phase.name}.log"), "a")
  return subprocess.Popen(phase.cmd(workdir), cwd=REPO, env=_env(root), stdout=log,
                          stderr=subprocess.STDOUT)


def _wait_until(proc, ready, limit_s):
  end = time.monotonic() + limit_s
  while proc.poll() is None and not ready() and time.monotonic() < end:
    time.sleep(0.02)


def _run_to_end(phase, workdir, root):
  """Runs `phase` to its end; returns (startup seconds, seconds per logged step)."""
  t0, rows0 = time.monotonic(), phase.rows(workdir)
  proc = _start(phase, workdir, root)
  _wait_until(proc, lambda: phase.rows(workdir) > rows0, PROCESS_LIMIT_S)
  t1 = time.monotonic()
  if proc.wait(PROCESS_LIMIT_S) != 0:
    raise SystemExit(f"soak: {phase.name} in {workdir} exited {proc.returncode}; see its log in "
                     f"{root}")
  steps = max(phase.rows(workdir) - rows0, 1)
  return t1 - t0, (time.monotonic() - t1) / steps


def _fire(phase, workdir, root, rng):
  """One attempt with one signal at a random point -> a line describing it, or None when the
  run ended before the signal. Its timings update the phase's startup and step estimates (later
  attempts load compiled programs from the cache and start faster than the reference did)."""
  sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
  rows0, left = phase.rows(workdir), phase.total - phase.done(workdir)
  proc = _start(phase, workdir, root)
  t0, logged = time.monotonic(), []   # when this attempt's rows appeared

  def reached(k):
    while phase.rows(workdir) > rows0 + len(logged):
      logged.append(time.monotonic())
    return len(logged) >= k
  if rng.random() < STARTUP_KILLS:
    where = "random time"
    _wait_until(proc, lambda: reached(float("inf")), rng.uniform(0.2, phase.startup_s))
  else:
    k = rng.randint(1, max(min(left, MAX_AHEAD[phase.name]), 1))
    where = f"{k} step(s) in"
    _wait_until(proc, lambda: reached(k), PROCESS_LIMIT_S)
    time.sleep(rng.uniform(0, phase.step_s))
  if logged:
    phase.startup_s = logged[0] - t0
  if len(logged) > 1:
    phase.step_s = (logged[-1] - logged[0]) / (len(logged) - 1)
  if proc.poll() is not None:
    if proc.returncode != 0:
      raise SystemExit(f"soak: {phase.name} in {workdir} exited {proc.returncode} unsignalled; "
                       f"see its log in {root}")
    return None
  proc.send_signal(sig)
  code = proc.wait(PROCESS_LIMIT_S)
  if code not in (0, -sig):   # SIGTERM: saved and exited 0, or died before the loop's handler
    raise SystemExit(f"soak: {phase.name} exited {code} after {sig.name}; see its log in {root}")
  return (f"{sig.name} {phase.name} at {time.monotonic() - t0:.1f}s ({where}), resumed from "
          f"{phase.done(workdir)}/{phase.total}, exit {code}")


def _identical(phases, ref, run):
  import test_fault_matrix as fm
  try:
    for phase in phases:
      for stage in phase.stages:
        d = os.path.join("checkpoints", stage)
        last = str(max(int(s) for s in os.listdir(os.path.join(ref, d)) if s.isdigit()))
        fm._assert_same_step(os.path.join(ref, d, last), os.path.join(run, d, last))
    want = {(tuple(r["key"]), r["crc"]) for r in fm._prompt_log(ref)}
    assert {(tuple(r["key"]), r["crc"]) for r in fm._prompt_log(run)} == want, "RL prompts"
  except AssertionError as e:
    print(f"soak: differs: {str(e).splitlines()[0] if str(e) else 'arrays'}")
    return False
  return True


def _phases(steps):
  from arm_jax.rl.schedule import parse_stages
  pretrain = lambda w: [sys.executable, "-m", "arm_jax.cli", "pretrain", "--config", "shapes_tiny",
                        "--workdir", w, f"--config.train.steps={steps}"] + PRETRAIN
  rl = lambda w: [sys.executable, os.path.abspath(__file__), "--rl-child", w]
  plans = parse_stages(RL_STAGES)
  return [Phase("pretrain", pretrain, ["pretrain"], steps),
          Phase("rl", rl, [p.name for p in plans], sum(p.steps for p in plans))]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--kills", type=int, default=20)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--steps", type=int, default=80, help="pretraining steps")
  p.add_argument("--max-minutes", type=float, default=40.0)
  p.add_argument("--workdir", default=os.path.join(REPO, "runs", "soak"))
  p.add_argument("--rl-child", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.rl_child:
    import test_fault_matrix as fm
    fm.run_rl(args.rl_child, RL, RL_STAGES, from_pretrain=True)
    return 0
  rng, deadline = random.Random(args.seed), time.monotonic() + 60 * args.max_minutes
  root = os.path.abspath(args.workdir)
  shutil.rmtree(root, ignore_errors=True)
  os.makedirs(root)
  ref, run = os.path.join(root, "reference"), os.path.join(root, "fired_on")
  phases = _phases(args.steps)
  budgets = [round(args.kills * PRETRAIN_SHARE), args.kills - round(args.kills * PRETRAIN_SHARE)]
  kills = resumes = 0
  for i, phase in enumerate(phases):
    budget = budgets[i] + (args.kills - kills - sum(budgets[i:]) if i else 0)   # unused: carried
    phase.startup_s, phase.step_s = _run_to_end(phase, ref, root)
    print(f"soak: reference {phase.name}: startup {phase.startup_s:.1f}s, "
          f"{phase.step_s:.2f}s per step", flush=True)
    while budget and time.monotonic() < deadline:
      line = _fire(phase, run, root, rng)
      if line is None:
        break   # finished before the signal: the next phase takes over
      kills, resumes, budget = kills + 1, resumes + 1, budget - 1
      print(f"soak: kill {kills}: {line}", flush=True)
    _run_to_end(phase, run, root)
  same = _identical(phases, ref, run)
  print(f"soak: {kills} kills, {resumes} resumes, params identical: {'yes' if same else 'no'}")
  return 0 if same else 1


if __name__ == "__main__":
  sys.exit(main())
