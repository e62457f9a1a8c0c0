"""`arm-jax tokenizer-ablation`: one tokenizer per loss subset, scored like the paper's table.

Subsets come from config.tokenizer.ablation ((name, (weight keys kept on)), ...); the other
weights are set to 0 (tokenizer.w_entropy, a regulariser rather than an objective, stays as
configured in every row). Each run is its own stage (`tokenizer_ablation_<i>` checkpoints), so an
interrupted ablation resumes where it stopped. Writes <workdir>/tokenizer/ablation.{md,json}:

| losses | zero-shot | colour | shape | PSNR (dB) | code usage (%) | perplexity |
"""
from __future__ import annotations

import json
import os

from arm_jax.errors import UserError
from arm_jax.tokenizer import data as data_lib
from arm_jax.tokenizer import evaluate, weights
from arm_jax.tokenizer.train_teacher import load_teacher
from arm_jax.tokenizer.train_tokenizer import WEIGHTS, tokenizer_fn, train_tokenizer

HEADER = ("| losses | zero-shot | colour | shape | PSNR (dB) | code usage (%) | perplexity |\n"
          "|---|---|---|---|---|---|---|")


def subset_weights(config, keep) -> dict:
  unknown = [k for k in keep if k not in WEIGHTS]
  if unknown:
    raise UserError(f"tokenizer.ablation names '{unknown[0]}'; use weight keys from "
                    f"{', '.join(WEIGHTS)}")
  return {k: (config.tokenizer[k] if k in keep else 0.0) for k in WEIGHTS}


def _row(name: str, m: dict) -> str:
  return (f"| {name} | {100 * m['zero_shot']:.1f} | {100 * m['zero_shot_color']:.1f} | "
          f"{100 * m['zero_shot_shape']:.1f} | {m.get('psnr', float('nan')):.2f} | "
          f"{m.get('code_usage', float('nan')):.1f} | {m.get('perplexity', float('nan')):.0f} |")


def run_ablation(config, workdir: str) -> dict:
  """Trains (or resumes) every subset, evaluates it; returns {"rows": [...], "table": str}."""
  t = config.tokenizer
  steps = t.ablation_steps or t.steps
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.tokenizer.steps = steps
  tok = data_lib.text_tokenizer(cfg, workdir)
  teacher = load_teacher(cfg, workdir)
  rows = [{"losses": "teacher (SigLIP)", **evaluate.teacher_metrics(cfg, teacher, tok)}]
  fn = tokenizer_fn(cfg)
  for i, (name, keep) in enumerate(t.ablation):
    stage = f"tokenizer_ablation_{i}"
    train_tokenizer(cfg, workdir, name=stage, loss_weights=subset_weights(cfg, keep))
    model = weights.model_from_params(fn, weights.load_params(workdir, stage, fn,
                                                              command="tokenizer-ablation"))
    rows.append({"losses": name, "steps": steps,
                 **evaluate.tokenizer_quality(cfg, model, teacher, tok)})
  table = "\n".join([HEADER] + [_row(r["losses"], r) for r in rows])
  out_dir = os.path.join(workdir, "tokenizer")
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "ablation.md"), "w") as f:
    extra = f"; code-entropy weight {t.w_entropy} in every row" if t.w_entropy else ""
    f.write(f"Tokenizer ablation ({steps} steps each{extra}; held-out shapes-world images)\n\n"
            f"{table}\n")
  with open(os.path.join(out_dir, "ablation.json"), "w") as f:
    json.dump(rows, f, indent=1)
  return {"rows": rows, "table": table}
