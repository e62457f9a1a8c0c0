"""`arm-jax rl`: the GRPO stage schedule from the pretrained checkpoint of a workdir.

    arm-jax rl --config configs/shapes_tiny.py --workdir runs/demo

Reads `<workdir>/checkpoints/pretrain` (the policy to start from), the workdir's text and visual
tokenizers, and writes one checkpoint folder per stage (`checkpoints/rl_<k>_<kind>`, the newest
decoder checkpoint afterwards, so `generate`/`eval` pick the RL policy up) and reward curves in
`metrics/rl_<k>_<kind>.jsonl`. Rerunning resumes where it stopped.
"""
from __future__ import annotations

import os

from arm_jax import sharding as shd
from arm_jax.errors import UserError
from arm_jax.model.transformer import ModelConfig
from arm_jax.rl import grpo, rewards
from arm_jax.rl.loop import RLContext, run_schedule
from arm_jax.rl.prompts import PromptSource, eval_prompt_keys
from arm_jax.rl.schedule import parse_stages

# What run_rl reports per stage (the last logged iteration).
SUMMARY_KEYS = ("reward", "reward_t2i", "reward_edit", "kl", "clip_frac",
                "time_sample_s", "time_decode_s", "time_score_s", "time_update_s",
                "rollout_tokens_per_s")


def check_rl_config(config) -> None:
  """Every rl.* mistake as a one-line UserError before anything is loaded."""
  parse_stages(config.rl.stages)
  grpo.GRPOConfig.from_config(config.rl)
  rewards.import_reward_modules(config.rl.reward_modules)
  rewards.check_weights(config.rl.rewards)
  from arm_jax.rl.advantages import get_advantage
  get_advantage(config.rl.advantage)
  if not config.rl.cell_credit >= 0:
    raise UserError(f"rl.cell_credit must be a number >= 0 (0 = one advantage per sample); got "
                    f"{config.rl.cell_credit}")


def build_context(config, workdir: str, *, seed: int | None = None, log=print) -> RLContext:
  """The run's mesh, tokenizers and prompt source (eval prompts held out)."""
  from arm_jax.data.text_tokenizer import encode_prompt
  from arm_jax.decode.loading import load_codec, load_text_tokenizer
  codec = load_codec(config, workdir)
  tok = load_text_tokenizer(config, workdir)
  vocab = ModelConfig.from_config(config.model).vocab
  source = PromptSource(config, vocab, lambda text: encode_prompt(tok, text), codec.encode,
                        exclude=eval_prompt_keys(config))
  side = config.data.image_size // config.tokenizer.patch_size
  return RLContext(config, shd.make_mesh(config.mesh), shd.rules_of(config.mesh), codec, source,
                   (side, side), seed=config.rl.seed if seed is None else seed, log=log)


def pretrain_dir(workdir: str) -> str:
  """The pretrain stage's checkpoint folder; a one-line error when there is none."""
  stage_dir = os.path.join(workdir, "checkpoints", "pretrain")
  if not os.path.isdir(stage_dir):
    raise UserError(f"no pretrained checkpoint in {stage_dir}; run `arm-jax pretrain` with this "
                    f"--workdir first")
  return stage_dir


def pretrained_params(config, workdir: str, mesh, rules):
  """The newest pretrain checkpoint's params, sharded per config.mesh."""
  from arm_jax.interop.checkpoint_params import find_step_dir, restore_params
  return restore_params(find_step_dir(workdir, pretrain_dir(workdir)), config, mesh, rules)


def summarize(stage_metrics: dict) -> dict:
  return {name: {k: m[k] for k in SUMMARY_KEYS if k in m} for name, m in stage_metrics.items()}


def run_rl(config, workdir: str) -> dict:
  """Runs (or resumes) rl.stages from the workdir's pretrained policy -> {stage: metrics}."""
  check_rl_config(config)
  pretrain_dir(workdir)
  ctx = build_context(config, workdir)
  init = pretrained_params(config, workdir, ctx.mesh, ctx.rules)
  out = run_schedule(ctx, parse_stages(config.rl.stages), workdir, init)
  return summarize(out["stages"])


def run(config, args) -> int:
  for name, metrics in run_rl(config, args.workdir).items():
    shown = ", ".join(f"{k} {v:.3g}" for k, v in metrics.items())
    print(f"{name}: {shown}")
  return 0
