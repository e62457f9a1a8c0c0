"""The real benchmarks' file formats: read their prompts, write outputs where their scorers look.

With the data and the judge models, a user runs the official scorers on what these write.
What each format is (read from the benchmarks' own code):
- GenEval (djghosh13/geneval): prompts are `evaluation_metadata.jsonl`, one JSON record per line
  ({"tag", "prompt", "include", "exclude"?}). Generated images go in `<outdir>/<index:05d>/`,
  holding `metadata.jsonl` (that prompt's record, as one JSON object) and `samples/<k:04d>.png`;
  evaluation/evaluate_images.py walks exactly that.
- WISE (PKU-YuanGroup/WISE): prompts are JSON lists of {"prompt_id", "Prompt", "Explanation",
  "Subcategory"}; gpt_eval.py reads the image for prompt_id N from `<image_dir>/N.png` and writes
  scores as jsonl rows {"prompt_id", "Subcategory", "consistency", "realism",
  "aesthetic_quality"} (each 0..2), the schema `write_wise_scores` writes too.
- GEdit-Bench (stepfun-ai/GEdit-Bench on Hugging Face): rows with "task_type", "key",
  "instruction", "instruction_language", "input_image", "Intersection_exist". Read from a parquet
  file (images as Hugging Face `Image` structs {bytes, path}) or a jsonl whose "input_image" is
  a path relative to it. Its scorer reads `<out>/fullset/<task_type>/<language>/<key>.png` (the
  edit) beside `<key>_SRCIMG.png` (the source).
- POPE (RUCAIBox/POPE): questions are jsonl rows {"question_id", "image", "text", "label"};
  evaluate.py reads answers as jsonl rows with "answer", line by line in question order. Answers
  here also carry "question_id", "question" and "text" (the answer again, the key LLaVA-style
  POPE scorers read).
"""
from __future__ import annotations

import io
import json
import os
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from arm_jax.errors import UserError


class BenchmarkFileError(UserError, ValueError):
  """A benchmark file that is missing, malformed or lacks a field."""


# ---------------------------------------------------------------------------------------------
# Shared
# ---------------------------------------------------------------------------------------------

def save_png(path: str, image: np.ndarray) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  Image.fromarray(np.asarray(image, np.uint8)).save(path)
  return path


def load_image(source) -> np.ndarray:
  """A path or encoded bytes -> [H, W, 3] uint8."""
  try:
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
      return np.asarray(image.convert("RGB"))
  except (OSError, ValueError) as e:
    raise BenchmarkFileError(f"cannot read image {str(source)[:80]!r}: {e}") from e


def _read_jsonl(path: str, required: Sequence[str]) -> list[dict]:
  if not os.path.isfile(path):
    raise BenchmarkFileError(f"{path} not found; give the path to the benchmark's jsonl file")
  rows = []
  with open(path) as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise BenchmarkFileError(f"{path} line {n} is not JSON ({e.msg}); one object per line") \
            from e
      _require(row, required, f"{path} line {n}")
      rows.append(row)
  return rows


def _require(row, required: Sequence[str], where: str) -> None:
  if not isinstance(row, dict):
    raise BenchmarkFileError(f"{where} is not a JSON object")
  missing = [k for k in required if k not in row]
  if missing:
    raise BenchmarkFileError(f"{where} lacks {', '.join(missing)}; is this the right benchmark "
                             f"file?")


def _write_jsonl(path: str, rows: Iterable[dict]) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    for row in rows:
      f.write(json.dumps(row) + "\n")
  return path


# ---------------------------------------------------------------------------------------------
# GenEval
# ---------------------------------------------------------------------------------------------

def read_geneval_metadata(path: str) -> list[dict]:
  """evaluation_metadata.jsonl -> records (tag, prompt, include, exclude?)."""
  return _read_jsonl(path, ("tag", "prompt", "include"))


def write_geneval_metadata(path: str, records: Sequence[dict]) -> str:
  return _write_jsonl(path, records)


def write_geneval_outputs(out_dir: str, records: Sequence[dict],
                          samples: Sequence[Sequence[np.ndarray]]) -> list[list[str]]:
  """`<out_dir>/<i:05d>/metadata.jsonl` + `samples/<k:04d>.png` per prompt; returns the paths."""
  paths = []
  for i, (record, images) in enumerate(zip(records, samples)):
    folder = os.path.join(out_dir, f"{i:05d}")
    os.makedirs(os.path.join(folder, "samples"), exist_ok=True)
    with open(os.path.join(folder, "metadata.jsonl"), "w") as f:
      json.dump(record, f)
    paths.append([save_png(os.path.join(folder, "samples", f"{k:04d}.png"), image)
                  for k, image in enumerate(images)])
  return paths


def read_geneval_outputs(out_dir: str) -> list[tuple[dict, list[str]]]:
  """A GenEval outputs folder -> [(record, [sample png paths])] in prompt order."""
  if not os.path.isdir(out_dir):
    raise BenchmarkFileError(f"{out_dir} is not a folder of GenEval outputs")
  found = []
  for name in sorted(os.listdir(out_dir)):
    folder = os.path.join(out_dir, name)
    if not (name.isdigit() and os.path.isdir(folder)):
      continue
    meta_path = os.path.join(folder, "metadata.jsonl")
    try:
      with open(meta_path) as f:
        record = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
      raise BenchmarkFileError(f"{meta_path}: cannot read the prompt's record ({e})") from e
    _require(record, ("tag", "prompt", "include"), meta_path)
    sample_dir = os.path.join(folder, "samples")
    samples = sorted(f for f in os.listdir(sample_dir) if f.endswith(".png") and f[:-4].isdigit()) \
        if os.path.isdir(sample_dir) else []
    found.append((record, [os.path.join(sample_dir, f) for f in samples]))
  return found


# ---------------------------------------------------------------------------------------------
# WISE
# ---------------------------------------------------------------------------------------------

WISE_FIELDS = ("prompt_id", "Prompt", "Explanation", "Subcategory")


def read_wise_prompts(path: str) -> list[dict]:
  """A WISE prompts JSON file (a list of records) -> the records."""
  try:
    with open(path) as f:
      rows = json.load(f)
  except OSError as e:
    raise BenchmarkFileError(f"{path} not found; give a WISE prompts .json file") from e
  except json.JSONDecodeError as e:
    raise BenchmarkFileError(f"{path} is not JSON ({e.msg}); WISE prompts are a JSON list") from e
  if not isinstance(rows, list):
    raise BenchmarkFileError(f"{path} holds a {type(rows).__name__}; WISE prompts are a JSON list")
  for n, row in enumerate(rows):
    _require(row, WISE_FIELDS, f"{path} record {n}")
  return rows


def write_wise_prompts(path: str, records: Sequence[dict]) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump(list(records), f, indent=1)
  return path


def write_wise_images(image_dir: str, prompt_ids: Sequence[int],
                      images: Sequence[np.ndarray]) -> list[str]:
  return [save_png(os.path.join(image_dir, f"{pid}.png"), image)
          for pid, image in zip(prompt_ids, images)]


def write_wise_scores(path: str, rows: Sequence[dict]) -> str:
  keep = ("prompt_id", "Subcategory", "consistency", "realism", "aesthetic_quality")
  return _write_jsonl(path, ({k: r[k] for k in keep} for r in rows))


# ---------------------------------------------------------------------------------------------
# GEdit-Bench
# ---------------------------------------------------------------------------------------------

GEDIT_FIELDS = ("task_type", "key", "instruction", "instruction_language", "input_image")


def _gedit_parquet(path: str) -> list[dict]:
  try:
    import pyarrow.parquet as pq
  except ImportError as e:
    raise BenchmarkFileError("reading GEdit-Bench parquet needs pyarrow (pip install pyarrow), "
                             "or convert the rows to jsonl") from e
  rows = pq.read_table(path).to_pylist()
  for row in rows:
    image = row.get("input_image")
    if isinstance(image, dict):    # Hugging Face Image feature: {"bytes": ..., "path": ...}
      row["input_image"] = image.get("bytes") or image.get("path")
  return rows


def read_gedit_rows(path: str) -> list[dict]:
  """GEdit-Bench rows (parquet, or jsonl with image paths) with "input_image" as an array."""
  if not os.path.isfile(path):
    raise BenchmarkFileError(f"{path} not found; give a GEdit-Bench .parquet or .jsonl file")
  if path.endswith(".parquet"):
    rows = _gedit_parquet(path)
  else:
    rows = _read_jsonl(path, GEDIT_FIELDS)
  base = os.path.dirname(os.path.abspath(path))
  for n, row in enumerate(rows):
    _require(row, GEDIT_FIELDS, f"{path} row {n}")
    image = row["input_image"]
    if isinstance(image, str) and not os.path.isabs(image):
      image = os.path.join(base, image)
    row["input_image"] = load_image(image)
    row.setdefault("Intersection_exist", False)
  return rows


def gedit_paths(out_dir: str, row: dict) -> tuple[str, str]:
  """(edited image path, source image path) where GEdit-Bench's scorer looks for them."""
  folder = os.path.join(out_dir, "fullset", row["task_type"], row["instruction_language"])
  return os.path.join(folder, f"{row['key']}.png"), os.path.join(folder, f"{row['key']}_SRCIMG.png")


def write_gedit_outputs(out_dir: str, rows: Sequence[dict], sources: Sequence[np.ndarray],
                        edited: Sequence[np.ndarray]) -> list[str]:
  """Writes each edit and its source in GEdit-Bench's layout; returns the edit paths."""
  paths = []
  for row, source, image in zip(rows, sources, edited):
    edit_path, source_path = gedit_paths(out_dir, row)
    save_png(source_path, source)
    paths.append(save_png(edit_path, image))
  return paths


# ---------------------------------------------------------------------------------------------
# POPE
# ---------------------------------------------------------------------------------------------

POPE_FIELDS = ("question_id", "image", "text", "label")


def read_pope_questions(path: str) -> list[dict]:
  """A POPE question file (jsonl) -> rows {question_id, image, text, label}."""
  rows = _read_jsonl(path, POPE_FIELDS)
  for n, row in enumerate(rows):
    if row["label"] not in ("yes", "no"):
      raise BenchmarkFileError(f"{path} question {row['question_id']} has label "
                               f"{row['label']!r}; POPE labels are 'yes' or 'no'")
  return rows


def write_pope_questions(path: str, rows: Sequence[dict]) -> str:
  return _write_jsonl(path, rows)


def write_pope_answers(path: str, rows: Sequence[dict], answers: Sequence[str]) -> str:
  """One answer row per question, in question order (POPE's evaluate.py pairs them by line)."""
  if len(rows) != len(answers):
    raise BenchmarkFileError(f"{len(answers)} answers for {len(rows)} POPE questions; "
                             f"answer every question once")
  return _write_jsonl(path, ({"question_id": r["question_id"], "question": r["text"],
                              "answer": a, "text": a} for r, a in zip(rows, answers)))
