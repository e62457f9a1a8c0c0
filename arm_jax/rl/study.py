"""`arm-jax rl-study`: does RL on one task move the other? The paper's Table 8 at toy scale.

    arm-jax rl-study --config configs/shapes_tiny.py --workdir runs/demo --out runs/demo/rl_study

From the workdir's pretrained checkpoint, for every seed in `rl.seeds`: SFT (no RL), each prefix
of `rl.stages` (T2I-RL, T2I->Edit, T2I->Edit->joint with the paper's schedule) and each later
single-task stage alone from SFT (Edit-RL); every run is scored by the eval suite (GenEval-like,
WISE-like, GEdit-like G_O). Prefixes share one chain of stages per seed, so the whole schedule is
trained once per seed, plus Edit-RL. Seed s scores every run, SFT included, on the same items with
sampling seed eval.seed + s: the SFT row's std is then the eval's own sampling noise, and each RL
row is compared with SFT under the same draw. Writes under --out:
  table.md / table.json   mean +/- std over seeds per row, and paired deltas vs SFT
  reward_curves.png       training rewards of every run, per task
  seed_<s>/               that seed's RL checkpoints, metrics and eval outputs (resumable)
"""
from __future__ import annotations

import functools
import json
import os
import time
from typing import Callable

import numpy as np

from arm_jax.errors import UserError
from arm_jax.rl.loop import collect, run_schedule
from arm_jax.rl.schedule import StagePlan, parse_stages, run_label, study_runs
from arm_jax.rl.stages import build_context, check_rl_config, pretrain_dir, pretrained_params

COLUMNS = ("GEdit G_O", "GenEval", "WISE")   # Table 8's order (DPG has no shapes-world analogue)
EVAL_TASKS = ("geneval", "wise", "edit")

# evaluate(params, out_dir, sample_seed) -> {column: score}
Evaluate = Callable[[object, str, int], dict]


def suite_evaluator(config, ctx, workdir: str) -> Evaluate:
  """Scores params with the eval suite through one ArmModel (compiled once, params swapped)."""
  from flax import nnx
  from arm_jax.decode.api import ArmModel
  from arm_jax.decode.compiled import CompiledSampler
  from arm_jax.decode.loading import load_text_tokenizer
  from arm_jax.eval.suite import evaluate
  from arm_jax.train.pretrain import decoder_fn
  graphdef = nnx.split(nnx.eval_shape(lambda: decoder_fn(config)(nnx.Rngs(0))))[0]
  holder = {}

  def run(params, out_dir: str, sample_seed: int) -> dict:
    if "model" not in holder:
      sampler = CompiledSampler(graphdef, params, config, mesh=ctx.mesh, rules=ctx.rules)
      holder["model"] = ArmModel(sampler, load_text_tokenizer(config, workdir), ctx.codec, config)
    # Same shapes and shardings: the compiled prefill/decode are reused for every run.
    holder["model"].sampler.params = params
    metrics = evaluate(config, holder["model"], out_dir, tasks=EVAL_TASKS,
                       sample_seed=sample_seed).metrics
    return {k: float(v) for k, v in metrics["headline"].items()}
  return run


# ---------------------------------------------------------------------------------------------
# Runs of one seed (resumable: scores are cached in seed_<s>/scores.json)
# ---------------------------------------------------------------------------------------------

def _slug(label: str) -> str:
  return label.replace("->", "_").replace("-", "_").lower()


def _load(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def _save(path: str, data: dict) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(data, f, indent=1)
  os.replace(tmp, path)


# Keys that may change between runs into one --out: more seeds resume; logging cadence only.
_FREE_KEYS = ("rl.seeds", "rl.log_every", "rl.ckpt_every")


def settings(config) -> dict[str, str]:
  """What a study's checkpoints and scores depend on: rl.*, decode.*, eval.* (repr per key)."""
  from arm_jax.config import flat_keys
  return {f"{sec}.{k}": repr(functools.reduce(getattr, k.split("."), config[sec]))
          for sec in ("rl", "decode", "eval") for k in flat_keys(config[sec])
          if f"{sec}.{k}" not in _FREE_KEYS}


def check_settings(config, out_dir: str) -> None:
  """Refuses to resume a study in out_dir made with other settings (its cached checkpoints and
  scores would be reused as if made with these); records them on a first run."""
  path = os.path.join(out_dir, "settings.json")
  now, before = settings(config), _load(path)
  if before and before != now:
    diff = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
    raise UserError(f"{out_dir} holds a study run with other settings ({', '.join(diff[:4])}"
                    f"{', ...' if len(diff) > 4 else ''}); pass a new --out, or the old "
                    f"settings to resume it")
  if not before:
    _save(path, now)


def run_seed(ctx, plans: list[StagePlan], init_params, evaluate: Evaluate, seed_dir: str,
             log=print, *, sample_seed: int) -> dict:
  """Every Table-8 run for one seed -> {label: {column: score, "rl_s": seconds}}.

  Every run, SFT included, is scored with the same sample_seed.
  """
  os.makedirs(seed_dir, exist_ok=True)
  path = os.path.join(seed_dir, "scores.json")
  scores = _load(path)

  def record(label: str, params, rl_seconds: float) -> None:
    if label in scores:
      return
    t = time.perf_counter()
    scores[label] = evaluate(params, os.path.join(seed_dir, "eval", _slug(label)), sample_seed)
    scores[label].update(rl_s=rl_seconds, eval_s=time.perf_counter() - t)
    _save(path, scores)
    log(f"  seed {ctx.seed} {label}: " + ", ".join(
        f"{c} {scores[label][c]:.3f}" for c in COLUMNS if c in scores[label]))

  record("SFT", init_params, 0.0)
  runs = study_runs(plans)
  chains = [(plans, "chain")] + [(p, _slug(label)) for label, p in runs.items()
                                 if p and p != plans[:len(p)]]
  for chain, name in chains:
    start = time.perf_counter()

    def on_stage(plan, params, metrics, chain=chain, start=start):
      record(run_label(chain[:chain.index(plan) + 1]), params, time.perf_counter() - start)
    run_schedule(ctx, chain, os.path.join(seed_dir, name), init_params, on_stage=on_stage)
  return scores


def heldout_reward(ctx, spec, params, kind: str, batches: int, seed: int) -> dict[str, float]:
  """Mean rollout reward of params on RL prompts of one task -> {"reward", "reward_se", parts}.

  The prompts are `batches` RL batches drawn with RL seed `seed` (pick one no training run used)
  and sampled as RL samples them, so this is the score RL optimises, on prompts it never saw:
  denser than the eval's pass/fail G_SC. reward_se is the standard error over batches.
  """
  if kind not in ("t2i", "edit"):
    raise ValueError(f"kind must be 't2i' or 'edit', not {kind!r}")
  saved, ctx.seed = ctx.seed, seed
  try:
    rows = [collect(ctx, spec, params, StagePlan(1, kind, batches), it)[1]
            for it in range(batches)]
  finally:
    ctx.seed = saved
  out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k.startswith("reward/")}
  totals = np.array([r["reward"] for r in rows])
  out["reward"] = float(totals.mean())
  out["reward_se"] = float(totals.std(ddof=1) / np.sqrt(len(totals))) if len(totals) > 1 else 0.0
  return out


# ---------------------------------------------------------------------------------------------
# Table and curves
# ---------------------------------------------------------------------------------------------

def aggregate(per_seed: dict[int, dict], labels: list[str]) -> dict:
  """{seed: {label: scores}} -> {label: {column: {mean, std, delta, delta_std, n}}}.

  std is over seeds (ddof=1); delta is the mean paired difference to SFT of the same seed.
  """
  table = {}
  for label in labels:
    row = {}
    for col in COLUMNS:
      pairs = [(s[label][col], s["SFT"][col]) for s in per_seed.values()
               if col in s.get(label, {}) and col in s.get("SFT", {})]
      if not pairs:
        continue
      vals, base = np.array(pairs).T
      ddof = 1 if len(vals) > 1 else 0
      row[col] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=ddof)),
                  "delta": float((vals - base).mean()),
                  "delta_std": float((vals - base).std(ddof=ddof)), "n": len(vals)}
    table[label] = row
  return table


def _moves(cell: dict) -> str:
  """A delta is called a move when it exceeds its seed-to-seed std (and is not zero)."""
  d, s = cell["delta"], cell["delta_std"]
  if abs(d) > s and d != 0:
    return "up" if d > 0 else "down"
  return "no clear change"


def synergy_lines(table: dict) -> list[str]:
  """Plain-language answers: does single-task RL move its own and the other task?"""
  lines = []
  checks = (("T2I-RL", "GenEval", "own"), ("T2I-RL", "WISE", "own"),
            ("T2I-RL", "GEdit G_O", "other"), ("Edit-RL", "GEdit G_O", "own"),
            ("Edit-RL", "GenEval", "other"), ("Edit-RL", "WISE", "other"))
  for label, col, kind in checks:
    cell = table.get(label, {}).get(col)
    if cell:
      lines.append(f"- {label} -> {col} ({kind} task): {cell['delta']:+.3f} +/- "
                   f"{cell['delta_std']:.3f} vs SFT: {_moves(cell)}")
  return lines


def write_table(table: dict, out_dir: str, meta: dict) -> str:
  head = "| Model | " + " | ".join(COLUMNS) + " |"
  rows = [head, "|" + "---|" * (len(COLUMNS) + 1)]
  for label, row in table.items():
    cells = []
    for col in COLUMNS:
      c = row.get(col)
      cells.append("-" if c is None else f"{c['mean']:.3f} +/- {c['std']:.3f}" + (
          "" if label == "SFT" else f" ({c['delta']:+.3f})"))
    rows.append(f"| {label} | " + " | ".join(cells) + " |")
  text = "\n".join([
      "# RL study: Table 8 on the shapes world", "",
      f"Seeds {meta['seeds']}; schedule {meta['stages']}; mean +/- std over seeds (ddof 1), "
      f"(paired delta vs SFT). G_O on GEdit's 0-10 scale, GenEval and WISE in 0-1. Seed s "
      f"scores every run on the same items with sampling seed eval.seed + s: the SFT row's std "
      f"is the eval's sampling noise; RL rows also vary with the RL seed (rollout sampling and "
      f"prompt order).", "",
      *rows, "", "## Cross-task synergy (delta vs SFT, mean +/- std over seeds)", "",
      *synergy_lines(table), "",
      f"Wall time: {meta['seconds']:.0f} s.", ""])
  with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write(text)
  _save(os.path.join(out_dir, "table.json"), {"table": table, **meta})
  return text


def plot_curves(out_dir: str, seeds, runs: dict[str, list[StagePlan]]) -> str:
  """reward_curves.png: per run with RL, training reward per task vs iteration, one line a seed."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from arm_jax.train.metrics import read_jsonl
  full = max(runs.values(), key=len)
  shown = {label: p for label, p in runs.items() if p and (p == full or p != full[:len(p)])}
  fig, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 3.6), squeeze=False)
  colors = {"t2i": "tab:blue", "edit": "tab:orange"}
  for ax, (label, plans) in zip(axes[0], shown.items()):
    name = "chain" if plans == full else _slug(label)
    legend = set()
    for s in seeds:
      offset = 0
      for plan in plans:
        path = os.path.join(out_dir, f"seed_{s}", name, "metrics", f"{plan.name}.jsonl")
        rows = read_jsonl(path) if os.path.exists(path) else []
        for task in plan.tasks:
          pts = [(offset + r["step"], r[f"reward_{task}"]) for r in rows if f"reward_{task}" in r]
          if pts:
            ax.plot(*zip(*pts), color=colors[task], alpha=0.6, lw=1,
                    label=None if task in legend else f"{task} reward")
            legend.add(task)
        offset += plan.steps
        ax.axvline(offset, color="grey", lw=0.5, ls=":")
    ax.set(title=label, xlabel="RL iteration", ylabel="mean rollout reward", ylim=(0, 1))
    ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  path = os.path.join(out_dir, "reward_curves.png")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------

def rl_study(config, workdir: str, out_dir: str, *, evaluate: Evaluate | None = None,
             log=print) -> dict:
  """Runs the study (resumable) -> {"table": ..., "seeds": ..., "markdown": ...}."""
  check_rl_config(config)
  pretrain_dir(workdir)
  plans = parse_stages(config.rl.stages)
  seeds = [int(s) for s in config.rl.seeds]
  os.makedirs(out_dir, exist_ok=True)
  check_settings(config, out_dir)
  start = time.perf_counter()
  ctx = build_context(config, workdir, log=log)
  init = pretrained_params(config, workdir, ctx.mesh, ctx.rules)
  evaluate = suite_evaluator(config, ctx, workdir) if evaluate is None else evaluate
  per_seed = {}
  for s in seeds:
    log(f"rl-study seed {s}")
    ctx.seed = s
    per_seed[s] = run_seed(ctx, plans, init, evaluate, os.path.join(out_dir, f"seed_{s}"), log,
                           sample_seed=int(config.eval.seed) + s)
  runs = study_runs(plans)
  table = aggregate(per_seed, list(runs))
  meta = {"seeds": seeds, "stages": [[p.kind, p.steps] for p in plans],
          "seconds": time.perf_counter() - start, "per_seed": per_seed}
  text = write_table(table, out_dir, meta)
  plot_curves(out_dir, seeds, runs)
  return {"table": table, "per_seed": per_seed, "markdown": text}


def run(config, args) -> int:
  out = args.out or os.path.join(args.workdir, "rl_study")
  print(rl_study(config, args.workdir, out)["markdown"])
  return 0
