"""The eval suite's report sections: tables of scores and figures of what the model drew.

Each function returns one report.Section; `eval_sections` assembles them for whichever benchmarks
ran. Figures go in <out_dir>/figures/.
"""
from __future__ import annotations

import os

from arm_jax.eval import report as rep
from arm_jax.eval.curves import read_scalars
from arm_jax.eval.sets import EvalSets

GRID_ROWS = 10


def _figure(out_dir: str, name: str) -> str:
  return os.path.join(out_dir, "figures", name)


def headline_section(metrics: dict) -> rep.Section:
  rows = [{"metric": k, "value": v} for k, v in metrics["headline"].items()]
  body = ("The paper's columns on the shapes world (GenEval, WISE, POPE F1 and accuracies in "
          "0..1; GEdit scores 0..10). The exact scorers are described in arm_jax/eval/.\n\n"
          + rep.markdown_table(rows))
  return rep.Section("Headline", body)


def geneval_section(sets: EvalSets, metrics: dict, samples, out_dir: str, prov: dict):
  g = metrics["geneval"]
  rows = [{"task": t, "accuracy": v} for t, v in g["tasks"].items()]
  rows.append({"task": "overall (mean of tasks)", "accuracy": g["overall"]})
  if g.get("novel"):
    rows.append({"task": "prompts needing a held-out pair", "accuracy": g["novel"]["overall"]})
  bars = rep.bar_chart(_figure(out_dir, "geneval_tasks.png"), g["tasks"],
                       "GenEval-like accuracy per task", prov, (0, 1))
  grid = rep.image_grid(_figure(out_dir, "geneval_samples.png"),
                        [(i.prompt, s) for i, s in zip(sets.geneval[:GRID_ROWS], samples)],
                        "GenEval-like prompts -> samples", prov)
  body = (f"{g['images']} images; GenEval's rules over the shapes detector "
          "(arm_jax/eval/geneval.py). Outputs in GenEval's layout under geneval/.\n\n"
          + rep.markdown_table(rows))
  return rep.Section("Text-to-image: GenEval-like", body, [bars, grid])


def wise_section(sets: EvalSets, metrics: dict, images, out_dir: str, prov: dict):
  w = metrics["wise"]
  rows = [{"subcategory": k, "WiScore": v} for k, v in w["subcategories"].items()]
  rows.append({"subcategory": "overall", "WiScore": w["wiscore"]})
  grid = rep.image_grid(_figure(out_dir, "wise_samples.png"),
                        [(i.prompt, [im]) for i, im in zip(sets.wise[:GRID_ROWS], images)],
                        "WISE-like prompts -> samples", prov)
  body = (f"{w['images']} prompts needing a fact from the text-only split; fully right "
          f"(shape and colour): {w['knowledge_accuracy']:.3f}.\n\n" + rep.markdown_table(rows))
  return rep.Section("World knowledge: WISE-like", body, [grid])


def edit_section(sets: EvalSets, metrics: dict, shown, out_dir: str, prov: dict):
  e = metrics["edit"]
  sources, edited = shown
  rows = [{"edit": k, "G_O": v} for k, v in e["kinds"].items()]
  rows.append({"edit": "all", "G_O": e["G_O"]})
  grid = rep.image_grid(
      _figure(out_dir, "edit_samples.png"),
      [(i.instruction, [s, m, sets.render(i.target, i.index)])
       for i, s, m in zip(sets.edit[:GRID_ROWS], sources, edited)],
      "Editing: source -> model -> target", prov, ("source", "model", "target"))
  body = (f"{e['samples']} edits. G_SC {e['G_SC']:.2f}, G_PQ {e['G_PQ']:.2f}, G_O {e['G_O']:.2f} "
          f"(0..10); instruction followed in {e['followed']:.3f} of edits.\n\n"
          + rep.markdown_table(rows))
  return rep.Section("Editing: GEdit-like", body, [grid])


def understanding_section(metrics: dict) -> rep.Section:
  u = metrics["understanding"]
  rows = [{"questions": k, "accuracy": v} for k, v in u["kinds"].items()]
  pope = [{"POPE subset": k, **v} for k, v in u["pope"].items()]
  body = (f"{u['questions']} questions, accuracy {u['accuracy']:.3f}.\n\n"
          + rep.markdown_table(rows) + "\n\n" + rep.markdown_table(pope))
  return rep.Section("Understanding: POPE-like, multiple choice, counting", body)


def tokenizer_section(metrics: dict) -> rep.Section:
  rows = [{"metric": k, "value": v} for k, v in metrics["tokenizer"].items()]
  return rep.Section("Visual tokenizer", rep.markdown_table(rows))


def curves_section(curves_from: str, out_dir: str, prov: dict) -> rep.Section:
  curves = read_scalars(curves_from)
  path = rep.plot_curves(_figure(out_dir, "curves.png"), curves,
                         f"Training curves ({curves_from})", prov)
  return rep.Section("Training curves", f"{len(curves)} scalar series from the TensorBoard "
                     f"events under {curves_from}.", [path])


def eval_sections(sets: EvalSets, metrics: dict, shown: dict, out_dir: str, prov: dict,
                  curves_from: str | None = None) -> list[rep.Section]:
  sections = [headline_section(metrics)]
  if "geneval" in metrics:
    sections.append(geneval_section(sets, metrics, shown["geneval"], out_dir, prov))
  if "wise" in metrics:
    sections.append(wise_section(sets, metrics, shown["wise"], out_dir, prov))
  if "edit" in metrics:
    sections.append(edit_section(sets, metrics, shown["edit"], out_dir, prov))
  if "understanding" in metrics:
    sections.append(understanding_section(metrics))
  if "tokenizer" in metrics:
    sections.append(tokenizer_section(metrics))
  if curves_from:
    sections.append(curves_section(curves_from, out_dir, prov))
  return sections
