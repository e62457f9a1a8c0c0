"""`arm-jax demo`: the whole ARM pipeline at toy scale, resumable stage by stage.

    make demo      # = arm-jax demo --config configs/shapes_tiny.py --workdir runs/demo

Each stage is a library call that tests call too. A finished stage leaves a marker in
`<workdir>/stages/`, so re-running skips it; an interrupted stage resumes from its own
checkpoints. Wall times go to `<workdir>/stages/timings.json` and into the report.
"""
from __future__ import annotations

import importlib
import json
import os
import time
from typing import Callable

from arm_jax.errors import UserError

# (name, "module:function", what it does). Each function is fn(config, workdir) -> dict | None.
STAGES = (
    ("build-data", "arm_jax.data.build:build_for_workdir", "render the shapes world"),
    ("train-teacher", "arm_jax.tokenizer.stages:train_teacher", "mini-SigLIP teacher"),
    ("train-tokenizer", "arm_jax.tokenizer.stages:train_tokenizer", "visual tokenizer, 4 losses"),
    ("tokenizer-metrics", "arm_jax.demo_stages:tokenizer_metrics", "PSNR, usage, zero-shot"),
    ("tokenize-dataset", "arm_jax.tokenizer.stages:tokenize_dataset", "images -> codes"),
    ("pretrain", "arm_jax.demo_stages:pretrain", "AR pretraining, all formats"),
    ("eval-sft", "arm_jax.demo_stages:eval_sft", "scores before RL"),
    ("rl", "arm_jax.demo_stages:rl", "GRPO: T2I -> edit -> joint"),
    ("eval-rl", "arm_jax.demo_stages:eval_rl", "scores after RL"),
    ("export-hf", "arm_jax.demo_stages:export", "HF / PyTorch export"),
    ("report", "arm_jax.demo_report:write", "report.md with grids and plots"),
)


def _marker(workdir: str, name: str) -> str:
  return os.path.join(workdir, "stages", f"{name}.done.json")


def _resolve(target: str) -> Callable:
  module, fn = target.split(":")
  return getattr(importlib.import_module(module), fn)


def run_stages(config, workdir: str, *, fresh: bool = False,
               stages=STAGES, log=print) -> dict[str, dict]:
  """Runs (or skips) each stage in order; returns {stage: {"seconds": s, "result": ...}}."""
  workdir = os.path.abspath(workdir)   # orbax opens absolute checkpoint paths only
  os.makedirs(os.path.join(workdir, "stages"), exist_ok=True)
  done: dict[str, dict] = {}
  total = time.perf_counter()
  for i, (name, target, what) in enumerate(stages, 1):
    marker = _marker(workdir, name)
    if os.path.exists(marker) and not fresh:
      with open(marker) as f:
        done[name] = json.load(f)
      log(f"[{i}/{len(stages)}] {name}: done earlier ({done[name]['seconds']:.0f} s), skipped")
      continue
    log(f"[{i}/{len(stages)}] {name}: {what}")
    t = time.perf_counter()
    result = _resolve(target)(config, workdir)
    record = {"seconds": time.perf_counter() - t, "result": result or {}}
    with open(marker, "w") as f:
      json.dump(record, f, indent=1, default=str)
    done[name] = record
    log(f"[{i}/{len(stages)}] {name}: {record['seconds']:.0f} s")
  timings = {name: rec["seconds"] for name, rec in done.items()}
  with open(os.path.join(workdir, "stages", "timings.json"), "w") as f:
    json.dump(timings, f, indent=1)
  log("stage wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) +
      f"; this run {time.perf_counter() - total:.0f} s")
  return done


def run(config, args) -> int:
  if config.data.dataset == "synthetic":
    raise UserError("the demo needs the shapes world; drop --config.data.dataset=synthetic")
  run_stages(config, args.workdir, fresh=args.fresh)
  print(f"report: {os.path.join(args.workdir, 'report', 'report.md')}")
  return 0
