"""`arm-jax build-data`: the datasets and the text tokenizer a config trains on.

    arm-jax build-data --config configs/shapes_tiny.py --workdir runs/tiny
    arm-jax build-data --from my_images/ --workdir runs/mine    # a folder of the user's images

Idempotent: what is already built for the same config is found and skipped (dataset configs and
the tokenizer file are named by a digest of what determines their bytes).
"""
from __future__ import annotations

import json
import logging
import os
import time

from arm_jax.data import shapes_world, text_tokenizer
from arm_jax.data.questions import CAPTION_QUESTION
from arm_jax.data.sources import dataset_records

# Examples of the training split whose texts train the tokenizer (the texts are templated, so
# more adds nothing but time).
_CORPUS_EXAMPLES = 10000


def corpus(config, data_dir: str):
  """Every text the model reads: captions, QA, instructions of the first training examples,
  the knowledge sentences and the fixed captioning question, in a fixed order."""
  records = dataset_records(config, data_dir, "train")
  for i in range(min(len(records), _CORPUS_EXAMPLES)):
    r = records[i]
    yield from r["captions"]
    for qa in r["qa"]:
      yield f"{qa['question']} {qa['answer']}"
    yield from r["instructions"]
  from arm_jax.data.knowledge import knowledge_sentences
  yield from knowledge_sentences()
  yield CAPTION_QUESTION


def build_data(config, data_dir: str) -> dict:
  """Builds (or finds) the image dataset, the knowledge text split and the text tokenizer."""
  d = config.data
  if d.dataset == "synthetic":
    return {"dataset": "synthetic", "note": "the synthetic source needs no files"}
  start = time.perf_counter()
  out = {"dataset": d.dataset}
  if d.dataset == "shapes_world":
    out["images"] = shapes_world.prepare(config, data_dir)
  else:
    out["images"] = dataset_records(config, data_dir, "train").name   # one-line error if absent
  out["text"] = shapes_world.prepare(config, data_dir, text_only=True)
  if not d.text_tokenizer:
    path = text_tokenizer.corpus_tokenizer_path(config, data_dir)
    if not os.path.exists(path):
      text_tokenizer.train_sentencepiece(corpus(config, data_dir),
                                         config.model.text_vocab_size, path)
    out["text_tokenizer"] = path
  out["seconds"] = round(time.perf_counter() - start, 2)
  return out


def data_dir_of(config, workdir: str) -> str:
  return config.data.data_dir or os.path.join(workdir, "data")


def build_for_workdir(config, workdir: str) -> dict:
  """The demo's build-data stage."""
  return build_data(config, data_dir_of(config, workdir))


def run(config, args) -> int:
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
  data_dir = data_dir_of(config, args.workdir)
  if args.from_dir:
    from arm_jax.data.folder import import_folder
    from arm_jax.data.shapes_examples import WorldParams
    result = import_folder(args.from_dir, data_dir, WorldParams.from_config(config),
                           name=args.name)
    skipped = sum(result["skipped"].values())
    print(f"imported {result['examples']} examples into {result['dir']}; skipped {skipped} rows"
          + (f" ({', '.join(f'{k}: {v}' for k, v in result['skipped'].items())})"
             if skipped else ""))
    config = config.copy_and_resolve_references()
    config.data.dataset = result["name"]
    print(f"train on it with --config.data.dataset={result['name']}")
  print(json.dumps(build_data(config, data_dir), indent=1))
  return 0
