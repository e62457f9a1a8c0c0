"""The reward RL optimises, on RL prompts no training run drew: SFT vs RL checkpoints.

    python examples/heldout_reward.py --workdir runs/demo \
        runs/demo/rl_study/seed_0/chain/checkpoints/rl_1_t2i/4 \
        runs/demo/rl_study/seed_0/edit_rl/checkpoints/rl_1_edit/3

Scores the workdir's pretrained checkpoint (SFT) and every step dir given, on `--batches` RL
batches per task drawn with RL seed `--seed`, sampled as RL samples them (rl.* temperatures, no
guidance). The eval's G_O counts an edit only when everything is right; this mean reward moves
with every cell, so it shows whether RL improved what it was trained on. Config overrides
(--config.x=y) go after the paths, the same ones the checkpoints were trained with.
"""
from __future__ import annotations

import argparse
import os
import sys

from arm_jax.config import load_config
from arm_jax.errors import UserError
from arm_jax.interop.checkpoint_params import restore_params
from arm_jax.rl import loop
from arm_jax.rl.stages import build_context, pretrained_params
from arm_jax.rl.study import heldout_reward


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="run dir with the pretrained checkpoint")
  parser.add_argument("--config", default="shapes_tiny")
  parser.add_argument("--batches", type=int, default=6, help="RL batches per task")
  parser.add_argument("--seed", type=int, default=999, help="RL seed the prompts are drawn with")
  parser.add_argument("--tasks", default="t2i,edit")
  parser.add_argument("checkpoints", nargs="*", help="RL step dirs to score beside SFT")
  args, overrides = parser.parse_known_args()
  tasks = args.tasks.split(",")
  if not set(tasks) <= {"t2i", "edit"}:
    parser.error(f"--tasks {args.tasks!r}: choose from t2i, edit (comma-separated)")
  cfg = load_config(args.config, overrides)
  ctx = build_context(cfg, args.workdir, log=lambda s: None)
  sft = pretrained_params(cfg, args.workdir, ctx.mesh, ctx.rules)
  _, spec = loop.policy_state(ctx, 0, sft)
  print(f"{'task':5} {'reward':>7} {'+/- se':>7}  checkpoint")
  for name in ["SFT"] + args.checkpoints:
    params = sft if name == "SFT" else restore_params(name, cfg, ctx.mesh, ctx.rules)
    for kind in tasks:
      r = heldout_reward(ctx, spec, params, kind, args.batches, args.seed)
      print(f"{kind:5} {r['reward']:7.4f} {r['reward_se']:7.4f}  {name}", flush=True)


if __name__ == "__main__":
  try:
    main()
  except UserError as e:   # a missing checkpoint, a bad --config key: one line, not a traceback
    sys.exit(f"{os.path.basename(__file__)}: error: {e}")
