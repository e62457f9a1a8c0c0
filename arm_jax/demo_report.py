"""The demo's report: one report.md over every stage of a workdir, numbers from that run only.

Reads what the stages left behind (stage markers and timings, tokenizer metrics, the SFT and RL
eval outputs, metrics jsonl files, the export) and writes `<workdir>/report/report.md` with
tables, the eval suites' sample grids and the training / reward curves.
"""
from __future__ import annotations

import glob
import json
import os

from arm_jax.eval import report as rep
from arm_jax.train.metrics import read_jsonl

PIPELINE = """```
shapes world (tfds/ArrayRecord + grain) -> mini-SigLIP teacher -> {quantizer} tokenizer (4 losses)
  -> codes -> AR pretraining (und / T2I / edit / text) -> GRPO (T2I -> edit -> joint)
  -> eval (GenEval / WISE / GEdit / POPE analogues) -> export (HF safetensors + torch decoder)
```"""


def _load(path: str) -> dict:
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    return json.load(f)


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(v, (int, float)):
      out[prefix + k] = v
  return out


def _timings_section(workdir: str, stages) -> rep.Section:
  timings = {}
  for name in stages:
    marker = _load(os.path.join(workdir, "stages", f"{name}.done.json"))
    if marker:
      timings[name] = marker["seconds"]
  rows = [{"stage": k, "seconds": round(v, 1)} for k, v in timings.items()]
  rows.append({"stage": "total", "seconds": round(sum(timings.values()), 1)})
  return rep.Section("Stage wall times", "On this machine, this run (seconds).\n\n" +
                     rep.markdown_table(rows, precision=1))


def _tokenizer_section(workdir: str) -> rep.Section | None:
  m = _load(os.path.join(workdir, "tokenizer", "tokenizer_metrics.json"))
  if not m:
    return None
  teacher, tok = _flatten(m.get("teacher", {})), _flatten(m.get("tokenizer", {}))
  rows = [{"metric": k, "teacher": teacher.get(k, ""), "tokenizer": tok.get(k, "")}
          for k in list(dict.fromkeys(list(tok) + list(teacher)))]
  body = ("Held-out shapes-world images. Zero-shot: shape and colour classified through text "
          "prompts in the aligned space; PSNR and code usage from the tokenizer's "
          "reconstructions (arm_jax/tokenizer/evaluate.py).\n\n" + rep.markdown_table(rows))
  if m.get("ceiling"):
    body += ("\n\nCeiling: what a perfect AR model could score through this tokenizer "
             "(arm_jax/eval/ceiling.py). Exact scenes: encode -> decode parsed by the detector "
             "equals the scene (every object's shape, colour, size and cell); GenEval and GEdit "
             "score the true images after encode -> decode.\n\n" + rep.markdown_table(
                 [{"ceiling": k, "value": v} for k, v in _flatten(m["ceiling"]).items()]))
  grid = os.path.join(workdir, "tokenizer", "tokenizer_reconstructions.png")
  return rep.Section("Visual tokenizer", body, [grid] if os.path.isfile(grid) else [])


def _before_after(workdir: str) -> rep.Section | None:
  sft_m = _load(os.path.join(workdir, "eval", "sft", "metrics.json"))
  rl_m = _load(os.path.join(workdir, "eval", "rl", "metrics.json"))
  sft, after = sft_m.get("headline", {}), rl_m.get("headline", {})
  if not sft:
    return None
  se = sft_m.get("headline_se", {})
  rows = [{"metric": k, "SFT (pretrained)": v, "after RL": after.get(k, ""),
           "change": (after[k] - v) if k in after else "", "sampling SE": se.get(k, "")}
          for k, v in sft.items()]
  body = ("The paper's columns on the shapes world, before and after the GRPO schedule "
          "(GenEval, WISE, POPE F1, accuracies in 0..1; GEdit scores 0..10). Sampling SE: the "
          "standard error of the SFT score over the eval's items (a change smaller than it is "
          "noise). One seed; the `arm-jax rl-study` command repeats RL over seeds for error "
          "bars.\n\n" + rep.markdown_table(rows))
  kinds = sft_m.get("understanding", {}).get("kinds", {})
  if kinds:
    after_kinds = rl_m.get("understanding", {}).get("kinds", {})
    body += ("\n\nUnderstanding accuracy by question kind:\n\n" + rep.markdown_table(
        [{"kind": k, "SFT": v, "after RL": after_kinds.get(k, "")} for k, v in kinds.items()]))
  return rep.Section("Before and after RL", body)


def _grids(workdir: str) -> list[rep.Section]:
  out = []
  for name, what in (("geneval_samples", "Text-to-image (GenEval-like prompts)"),
                     ("wise_samples", "World knowledge (WISE-like prompts)"),
                     ("edit_samples", "Editing (source -> model -> target)")):
    figs = [p for p in (os.path.join(workdir, "eval", run, "figures", f"{name}.png")
                        for run in ("sft", "rl")) if os.path.isfile(p)]
    if figs:
      out.append(rep.Section(what, "First: the pretrained model; second: after RL.", figs))
  return out


def _curves(workdir: str, out_dir: str, prov: dict) -> rep.Section | None:
  curves = {}
  for path in sorted(glob.glob(os.path.join(workdir, "metrics", "*.jsonl"))):
    stage = os.path.basename(path)[:-len(".jsonl")]
    rows = read_jsonl(path)
    for key in ("loss", "reward", "kl"):
      points = [(r["step"], r[key]) for r in rows if key in r and "step" in r]
      if points:
        curves[f"{stage}/{key}"] = points
  if not curves:
    return None
  path = rep.plot_curves(os.path.join(out_dir, "figures", "curves.png"), curves,
                         "Training losses and RL rewards", prov, max_panels=15)
  return rep.Section("Training and reward curves", "From `<workdir>/metrics/*.jsonl` "
                     "(TensorBoard events of the same values are under `<workdir>/tb`).", [path])


def _export_section(workdir: str) -> rep.Section | None:
  info = _load(os.path.join(workdir, "stages", "export-hf.done.json")).get("result", {})
  if not info:
    return None
  rows = [{"item": k, "value": v} for k, v in info.items()]
  return rep.Section("Export to Hugging Face / PyTorch", rep.markdown_table(rows, precision=6))


def write(config, workdir: str) -> dict:
  """Writes <workdir>/report/report.md; returns {"report": path}."""
  out_dir = os.path.join(workdir, "report")
  prov = rep.provenance(config, config.train.seed)
  from arm_jax.demo import STAGES
  pipeline = PIPELINE.format(quantizer=config.tokenizer.quantizer.upper())
  sections = [rep.Section("Pipeline", pipeline),
              _timings_section(workdir, [name for name, _, _ in STAGES]),
              _tokenizer_section(workdir), _before_after(workdir), *_grids(workdir),
              _curves(workdir, out_dir, prov), _export_section(workdir)]
  path = rep.write_report(out_dir, [s for s in sections if s is not None], config=config,
                          seed=config.train.seed, title=f"arm_jax demo: {config.name}")
  return {"report": path}
