"""`arm-jax eval`: score a checkpoint on the shapes-world benchmarks and write the report.

    arm-jax eval --workdir runs/demo                      # newest decoder checkpoint
    arm-jax eval --workdir runs/demo --checkpoint runs/demo/checkpoints/rl_3_joint --tasks geneval,edit

Writes <out> (default <workdir>/eval): report.md, metrics.json, figures/, and each benchmark's
outputs in its own file format (see arm_jax/eval/suite.py). Training curves come from the
TensorBoard events under <workdir>/tb when there are any.
"""
from __future__ import annotations

import json
import os

from arm_jax.errors import UserError
from arm_jax.eval.suite import TASKS, run_eval


def load_arm_model(config, args):
  """The checkpoint + the workdir's tokenizers behind the EvalModel protocol."""
  from arm_jax.decode.api import ArmModel
  return ArmModel.from_checkpoint(config, args.workdir, args.checkpoint)


def _tokenizer_metrics(path: str) -> dict | None:
  if not path:
    return None
  try:
    with open(path) as f:
      metrics = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise UserError(f"--tokenizer-metrics {path}: cannot read a JSON object ({e})") from e
  if not isinstance(metrics, dict):
    raise UserError(f"--tokenizer-metrics {path} holds a {type(metrics).__name__}; give a JSON "
                    f"object of metric -> value")
  return metrics


def run(config, args, load_model=load_arm_model) -> int:
  """Scores the model, writes the report, prints the headline and where the report is."""
  tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
  unknown = [t for t in tasks if t not in TASKS]
  if unknown or not tasks:
    raise UserError(f"--tasks {args.tasks!r}: choose from {','.join(TASKS)}")
  tokenizer = _tokenizer_metrics(args.tokenizer_metrics)
  out = args.out or os.path.join(args.workdir, "eval")
  tb = os.path.join(args.workdir, "tb")
  metrics = run_eval(config, load_model(config, args), out, tokenizer, tasks=tasks,
                     curves_from=tb if os.path.isdir(tb) else None)
  for name, value in metrics["headline"].items():
    print(f"{name:12s} {value:.3f}")
  print(os.path.join(out, "report.md"))
  return 0
