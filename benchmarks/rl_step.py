"""Where one GRPO iteration spends its time: sampling vs pixels vs scoring vs update.

    python benchmarks/rl_step.py                        # shapes_tiny, random policy, stand-in codec
    python benchmarks/rl_step.py --workdir runs/demo    # the demo's pretrained policy + tokenizers
    python benchmarks/rl_step.py --quick

Per task (T2I, editing) one iteration of the real loop pieces (arm_jax/rl/loop.py `collect` and
`update`): rollouts from the compiled sampler (P prompts x G samples), codes -> pixels, detector
rewards, then the teacher-forced old/reference log-probs and mu GRPO updates. Compilation is
kept out (a warm-up iteration first). Figures: seconds per phase and their share of the
iteration, rollout image tokens/s, and update tokens/s (teacher-forced tokens through forward +
backward); their ratio says how much dearer a sampled token is than a trained one here.
"""
from __future__ import annotations

import argparse
import os
import time
import zlib

import jax
import numpy as np

from arm_jax import sharding as shd
from arm_jax.config import load_config
from arm_jax.rl import loop
from arm_jax.rl.schedule import StagePlan

PHASES = ("time_prompts_s", "time_sample_s", "time_decode_s", "time_score_s", "time_update_s")


def _context(cfg, workdir: str):
  if workdir:
    from arm_jax.rl.stages import build_context, pretrained_params
    ctx = build_context(cfg, workdir, log=lambda s: None)
    return ctx, pretrained_params(cfg, workdir, ctx.mesh, ctx.rules), "pretrained + tokenizer"
  from arm_jax.model.transformer import ModelConfig
  from arm_jax.rl.codec import PatchColorCodec
  from arm_jax.rl.prompts import PromptSource
  vocab = ModelConfig.from_config(cfg.model).vocab
  codec = PatchColorCodec.from_config(cfg)
  words = lambda text: [zlib.crc32(w.encode()) % cfg.model.text_vocab_size for w in text.split()]
  side = cfg.data.image_size // cfg.tokenizer.patch_size
  ctx = loop.RLContext(cfg, shd.make_mesh(cfg.mesh), shd.rules_of(cfg.mesh), codec,
                       PromptSource(cfg, vocab, words, codec.encode), (side, side),
                       log=lambda s: None)
  state, _ = loop.policy_state(ctx, 0)
  return ctx, state["params"], "random init + stand-in codec"


def measure(ctx, params, kind: str, iterations: int) -> dict:
  plan = StagePlan(1, kind, iterations + 1)
  state, spec = loop.policy_state(ctx, 0, params)
  ref = jax.tree.map(lambda x: x.copy(), state["params"])
  step_fn = loop._step_fn(ctx, spec)
  rows = []
  for it in range(iterations + 1):
    batch, m = loop.collect(ctx, spec, state["params"], plan, it)
    state, upd = loop.update(ctx, spec, step_fn, state, ref, batch)
    m.update(upd, tokens=batch["tokens"].size,
             rollout_tokens_per_s=m["rollout_tokens"] / m["time_sample_s"])
    if it:   # the first iteration compiles
      rows.append(m)
  return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default="", help="a demo workdir (pretrain + tokenizers)")
  parser.add_argument("--config", default="shapes_tiny")
  parser.add_argument("--quick", action="store_true", help="1 timed iteration per task")
  args, overrides = parser.parse_known_args()
  cfg = load_config(args.config, overrides)
  ctx, params, what = _context(cfg, args.workdir)
  r = cfg.rl
  print(f"RL iteration, {cfg.name} ({what}); {r.prompts_per_step} prompts x G={r.group_size}, "
        f"mu={r.updates_per_batch}, {jax.device_count()} {jax.default_backend()} device(s), "
        f"{os.cpu_count()} cores")
  print(f"{'task':6} {'sample s':>9} {'pixels s':>9} {'score s':>8} {'update s':>9} "
        f"{'total s':>8}  {'sample/score/update share':>26}  {'rollout tok/s':>13} "
        f"{'update tok/s':>12} {'ratio':>6}")
  for kind in ("t2i", "edit"):
    m = measure(ctx, params, kind, 1 if args.quick else 3)
    total = sum(m[p] for p in PHASES)
    share = "/".join(f"{m[p] / total:.0%}" for p in ("time_sample_s", "time_score_s",
                                                      "time_update_s"))
    update_tps = m["tokens"] * r.updates_per_batch / m["time_update_s"]
    print(f"{kind:6} {m['time_sample_s']:9.2f} {m['time_decode_s']:9.2f} "
          f"{m['time_score_s']:8.2f} {m['time_update_s']:9.2f} {total:8.2f}  {share:>26}  "
          f"{m['rollout_tokens_per_s']:13.0f} {update_tps:12.0f} "
          f"{update_tps / m['rollout_tokens_per_s']:6.1f}")
  print("ratio = update tokens/s over rollout tokens/s (teacher-forced tokens are that many "
        "times cheaper than sampled ones)")


if __name__ == "__main__":
  main()
