"""The eval suite: a model (the EvalModel protocol) + a config -> scores, benchmark files, report.

    metrics = run_eval(config, model, "runs/demo/eval")            # report.md, metrics.json, PNGs

`evaluate` does the work and returns the metrics with the report sections, so a caller (the demo)
can put its own sections around them and call report.write_report once. Under `out_dir`:
  geneval/  evaluation_metadata.jsonl, <i:05d>/{metadata.jsonl, samples/*.png}, results.jsonl
  wise/     shapes_wise.json (WISE prompt format), images/<prompt_id>.png, scores.jsonl
  gedit/    rows.jsonl, fullset/<task_type>/en/<key>.png and <key>_SRCIMG.png, scores.jsonl
  pope/     images/*.png, shapes_pope_<subset>.json questions, answers_<subset>.jsonl
  understanding/answers.jsonl  every question, answer and verdict
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

from arm_jax.data.shapes_examples import HELD_OUT
from arm_jax.errors import UserError
from arm_jax.eval import benchmark_files as files
from arm_jax.eval import editbench, geneval, understanding, wise
from arm_jax.eval import report as rep
from arm_jax.eval.detector import parse_image
from arm_jax.eval.protocol import EvalModel, checked_answers, checked_images
from arm_jax.eval.quality import quality
from arm_jax.eval.sections import eval_sections
from arm_jax.eval.sets import EvalSets, build_sets, is_novel

TASKS = ("geneval", "wise", "edit", "und")


@dataclasses.dataclass
class EvalResult:
  metrics: dict
  sections: list[rep.Section]


def _write_jsonl(path: str, rows) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    for row in rows:
      f.write(json.dumps(row, default=str) + "\n")


def _with_novel(summary_fn, rows: list[dict], **kw) -> dict:
  """summary of all rows, plus the same summary over rows needing a held-out pair."""
  out = summary_fn(rows, **kw)
  novel = [r for r in rows if r.get("novel")]
  out["novel"] = summary_fn(novel, **kw) if novel else None
  return out


# ---------------------------------------------------------------------------------------------
# One benchmark each
# ---------------------------------------------------------------------------------------------

def _geneval_novel(metadata: dict) -> bool:
  return any((req.get("color"), req["class"]) in HELD_OUT for req in metadata["include"])


def run_geneval(sets: EvalSets, model: EvalModel, out: str, seed: int, samples: int):
  items = sets.geneval
  prompts = [i.prompt for i in items]
  images = [checked_images(model.generate(prompts, seed + k), len(items), "generate")
            for k in range(samples)]
  per_item = [[images[k][n] for k in range(samples)] for n in range(len(items))]
  paths = files.write_geneval_outputs(out, [i.metadata for i in items], per_item)
  files.write_geneval_metadata(os.path.join(out, "evaluation_metadata.jsonl"),
                               [i.metadata for i in items])
  rows = []
  for item, imgs, img_paths in zip(items, per_item, paths):
    for image, path in zip(imgs, img_paths):
      correct, reason = geneval.evaluate(parse_image(image, sets.grid), item.metadata)
      rows.append({"filename": os.path.relpath(path, out), "tag": item.metadata["tag"],
                   "prompt": item.prompt, "correct": correct, "reason": reason,
                   "metadata": json.dumps(item.metadata), "novel": _geneval_novel(item.metadata)})
  _write_jsonl(os.path.join(out, "results.jsonl"), rows)
  return _with_novel(geneval.summarize, rows), rows, per_item


def run_wise(sets: EvalSets, model: EvalModel, out: str, seed: int):
  items = sets.wise
  images = checked_images(model.generate([i.prompt for i in items], seed), len(items), "generate")
  files.write_wise_prompts(os.path.join(out, "shapes_wise.json"), [i.record() for i in items])
  files.write_wise_images(os.path.join(out, "images"), [i.prompt_id for i in items], images)
  rows = []
  for item, image in zip(items, images):
    parse = parse_image(image, sets.grid)
    rows.append(wise.score(item, parse, quality(image, parse)) | {
        "novel": (item.color, item.shape) in HELD_OUT})
  files.write_wise_scores(os.path.join(out, "scores.jsonl"), rows)
  return _with_novel(wise.summarize, rows), rows, images


def run_edit(sets: EvalSets, model: EvalModel, out: str, seed: int):
  items = sets.edit
  sources = [sets.render(i.source, i.index) for i in items]
  edited = checked_images(model.edit(sources, [i.instruction for i in items], seed),
                          len(items), "edit")
  gedit_rows = [{"task_type": editbench.GEDIT_TASK_TYPES[i.kind], "key": i.key,
                 "instruction": i.instruction, "instruction_language": "en",
                 "Intersection_exist": False} for i in items]
  files.write_gedit_outputs(out, gedit_rows, sources, edited)
  _write_jsonl(os.path.join(out, "rows.jsonl"), [
      r | {"input_image": os.path.relpath(files.gedit_paths(out, r)[1], out)} for r in gedit_rows])
  rows = []
  for item, image in zip(items, edited):
    parse = parse_image(image, sets.grid)
    rows.append(editbench.score(parse.scene(), quality(image, parse), item.source, item.target)
                | {"key": item.key, "kind": item.kind, "instruction": item.instruction,
                   "novel": is_novel(item.source, item.target)})
  _write_jsonl(os.path.join(out, "scores.jsonl"), rows)
  return _with_novel(editbench.summarize, rows), rows, (sources, edited)


def run_understanding(sets: EvalSets, model: EvalModel, out: str):
  items = sets.und
  images = [sets.render(i.scene, i.index) for i in items]
  answers = checked_answers(model.answer(images, [i.question for i in items]), len(items))
  pope_dir = os.path.join(out, "pope")
  for item, image in zip(items, images):
    if item.kind.startswith("pope_"):
      files.save_png(os.path.join(pope_dir, "images", f"{item.index:05d}.png"), image)
  for subset in understanding.POPE_SUBSETS:
    chosen = [(i, a) for i, a in zip(items, answers) if i.kind == f"pope_{subset}"]
    questions = [{"question_id": i.index, "image": f"{i.index:05d}.png", "text": i.question,
                  "label": i.answer} for i, _ in chosen]
    files.write_pope_questions(os.path.join(pope_dir, f"shapes_pope_{subset}.json"), questions)
    files.write_pope_answers(os.path.join(pope_dir, f"answers_{subset}.jsonl"), questions,
                             [a for _, a in chosen])
  _write_jsonl(os.path.join(out, "understanding", "answers.jsonl"), [
      {"index": i.index, "kind": i.kind, "question": i.question, "label": i.answer, "answer": a,
       "correct": understanding.is_correct(i, a), "novel": is_novel(i.scene)}
      for i, a in zip(items, answers)])
  summary = understanding.summarize(items, answers)
  novel = [(i, a) for i, a in zip(items, answers) if is_novel(i.scene)]
  summary["novel"] = understanding.summarize([i for i, _ in novel], [a for _, a in novel]) \
      if novel else None
  return summary


# ---------------------------------------------------------------------------------------------
# The suite
# ---------------------------------------------------------------------------------------------

def headline(metrics: dict) -> dict:
  """The paper's table columns, from whichever benchmarks ran."""
  out = {}
  if "geneval" in metrics:
    out["GenEval"] = metrics["geneval"]["overall"]
  if "wise" in metrics:
    out["WISE"] = metrics["wise"]["wiscore"]
  if "edit" in metrics:
    out.update({"GEdit G_SC": metrics["edit"]["G_SC"], "GEdit G_PQ": metrics["edit"]["G_PQ"],
                "GEdit G_O": metrics["edit"]["G_O"]})
  if "understanding" in metrics:
    u = metrics["understanding"]
    out.update({"POPE F1": u["pope_f1"], "und acc": u["accuracy"],
                "MC acc": u["kinds"].get("choice", 0.0),
                "count acc": u["kinds"].get("counting", 0.0)})
  return out


def headline_se(metrics: dict) -> dict:
  """The eval's own sampling standard error of each headline score (same keys as headline):
  a change smaller than this is within what another sampling draw of the same model gives."""
  out = {}
  if "geneval" in metrics:
    out["GenEval"] = metrics["geneval"]["overall_se"]
  if "wise" in metrics:
    out["WISE"] = metrics["wise"]["wiscore_se"]
  if "edit" in metrics:
    out.update({f"GEdit {k}": metrics["edit"][f"{k}_se"] for k in ("G_SC", "G_PQ", "G_O")})
  if "understanding" in metrics:
    u = metrics["understanding"]
    out["POPE F1"] = u["pope_f1_se"]
    out["und acc"] = u["accuracy_se"]
  return out


def _timed(timing: dict, name: str, fn, *args):
  start = time.perf_counter()
  out = fn(*args)
  timing[f"{name}_s"] = time.perf_counter() - start
  return out


def evaluate(config, model: EvalModel, out_dir: str, tokenizer_metrics: dict | None = None, *,
             tasks=TASKS, curves_from: str | None = None,
             sample_seed: int | None = None) -> EvalResult:
  """Runs the chosen benchmarks; returns metrics and report sections (writes benchmark files).

  The items always come from config.eval.seed; sample_seed (default: the same) seeds only the
  model's sampling, so one item set can be scored under several draws to measure sampling noise.
  """
  unknown = [t for t in tasks if t not in TASKS]
  if unknown:
    raise UserError(f"unknown eval task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
  start = time.perf_counter()
  sets = build_sets(config)
  seed = config.eval.seed if sample_seed is None else int(sample_seed)
  metrics, shown, timing = {}, {}, {}
  if "geneval" in tasks:
    metrics["geneval"], _, shown["geneval"] = _timed(
        timing, "geneval", run_geneval, sets, model, os.path.join(out_dir, "geneval"), seed,
        config.eval.samples_per_prompt)
  if "wise" in tasks:
    metrics["wise"], _, shown["wise"] = _timed(
        timing, "wise", run_wise, sets, model, os.path.join(out_dir, "wise"), seed)
  if "edit" in tasks:
    metrics["edit"], _, shown["edit"] = _timed(
        timing, "edit", run_edit, sets, model, os.path.join(out_dir, "gedit"), seed)
  if "und" in tasks:
    metrics["understanding"] = _timed(timing, "und", run_understanding, sets, model, out_dir)
  if tokenizer_metrics:
    metrics["tokenizer"] = dict(tokenizer_metrics)
  metrics["headline"] = headline(metrics)
  metrics["headline_se"] = headline_se(metrics)
  metrics["provenance"] = rep.provenance(config, seed)
  sections = _timed(timing, "report", eval_sections, sets, metrics, shown, out_dir,
                    metrics["provenance"], curves_from)
  metrics["timing"] = timing | {"total_s": time.perf_counter() - start}
  return EvalResult(metrics, sections)


def run_eval(config, model: EvalModel, out_dir: str, tokenizer_metrics: dict | None = None, *,
             tasks=TASKS, curves_from: str | None = None) -> dict:
  """Scores `model` on the eval sets; writes report.md, metrics.json, figures, benchmark files."""
  result = evaluate(config, model, out_dir, tokenizer_metrics, tasks=tasks,
                    curves_from=curves_from)
  rep.write_report(out_dir, result.sections, config=config, seed=config.eval.seed,
                   metrics=result.metrics, title=f"arm_jax eval: {config.name}")
  return result.metrics
