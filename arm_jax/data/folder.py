"""`arm-jax build-data --from DIR`: a folder of the user's images -> our ArrayRecord format.

DIR holds image files and
  captions.jsonl   {"image": "cat.png", "caption": "a cat on a mat"}          (required)
  qa.jsonl         {"image": "cat.png", "question": "...", "answer": "..."}   (optional)
  edits.jsonl      {"source": "a.png", "target": "b.png", "instruction": "..."} (optional)
Every image is made RGB (grayscale, palette and RGBA are converted; alpha over black; 16-bit
grayscale keeps its top 8 bits), centre-cropped to the nearest of data.aspect_ratios and resized
to that ratio's size (long side data.image_size). Rows that cannot be used (bad json, missing or
truncated image, empty text, image smaller than a quarter of data.image_size or over PIL's
decompression-bomb limit, 32-bit integer/float pixels) are skipped, each with its reason logged,
and counted. The result is a tfds dataset `<data_dir>/<name>/1.0.0` (split 'train') with the
features of shapes_world.image_features(), plus formats.json saying which examples serve which
format.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import re

import numpy as np
import tqdm

from arm_jax.data.shapes_examples import WorldParams
from arm_jax.data.sources import FORMATS_INDEX, fit_image
from arm_jax.errors import UserError

VERSION = "1.0.0"


class SkipRow(Exception):
  """A row that cannot be used: `kind` is counted, the message is logged."""

  def __init__(self, kind: str, detail: str):
    super().__init__(f"{kind}: {detail}")
    self.kind = kind


@dataclasses.dataclass
class _Example:
  image: str
  captions: list = dataclasses.field(default_factory=list)
  qa: list = dataclasses.field(default_factory=list)
  edit: dict | None = None


def load_image(path: str, params: WorldParams, hw: tuple[int, int] | None = None) -> np.ndarray:
  """File -> [h, w, 3] uint8 at the configured size (or `hw`). Raises SkipRow with the reason."""
  from PIL import Image
  if not os.path.isfile(path):
    raise SkipRow("missing image", os.path.basename(path))
  try:
    with Image.open(path) as im:
      im.load()
      if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # convert('RGB') clips 16-bit values (the image turns mostly white): keep the top byte
        im = Image.fromarray((np.asarray(im) >> 8).astype(np.uint8))
      elif im.mode in ("I", "F"):   # 32-bit values in no known range
        raise SkipRow("unsupported image mode", f"{os.path.basename(path)} is mode "
                      f"'{im.mode}'; save it as 8-bit RGB")
      if im.mode in ("RGBA", "LA", "P", "PA"):
        im = im.convert("RGBA")
        black = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(black, im)
      im = im.convert("RGB")
  except (OSError, SyntaxError, ValueError) as e:   # PIL's truncated/corrupt-file errors
    raise SkipRow("unreadable image", f"{os.path.basename(path)}: {e}") from e
  except Image.DecompressionBombError as e:   # refused from the header, before decoding
    raise SkipRow("image too large", f"{os.path.basename(path)}: {e}") from e
  w, h = im.size
  if min(h, w) < params.image_size // 4:
    raise SkipRow("image too small", f"{os.path.basename(path)} is {w}x{h}, under a quarter "
                  f"of data.image_size ({params.image_size})")
  return fit_image(im, params, hw)


def _rows(path: str):
  """(line number, text) of the non-blank lines of a jsonl file (none if it is absent)."""
  if not os.path.exists(path):
    return
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      if line.strip():
        yield n, line


def _parse(line: str, keys: tuple[str, ...]) -> dict:
  try:
    row = json.loads(line)
  except json.JSONDecodeError as e:
    raise SkipRow("bad json", e.msg) from e
  if not isinstance(row, dict):
    raise SkipRow("bad json", "not an object")
  for k in keys:
    if not isinstance(row.get(k), str) or not row[k].strip():
      raise SkipRow(f"empty {k}", f"'{k}' is missing or empty")
  return row


def _collect(src: str, skipped: collections.Counter) -> list[_Example]:
  """Joins the three jsonl files by image name into examples (in file order)."""
  examples: dict[str, _Example] = {}
  extra: list[_Example] = []

  def each(name, keys):
    for n, line in _rows(os.path.join(src, name)):
      try:
        yield _parse(line, keys)
      except SkipRow as e:
        skipped[e.kind] += 1
        logging.warning("skipped %s line %d: %s", name, n, e)

  for row in each("captions.jsonl", ("image", "caption")):
    examples.setdefault(row["image"], _Example(row["image"])).captions.append(row["caption"])
  for row in each("qa.jsonl", ("image", "question", "answer")):
    examples.setdefault(row["image"], _Example(row["image"])).qa.append(
        {"question": row["question"], "answer": row["answer"], "kind": "user", "choices": []})
  for row in each("edits.jsonl", ("source", "target", "instruction")):
    ex = examples.setdefault(row["source"], _Example(row["source"]))
    if ex.edit is not None:   # a second edit of the same source: its own example
      ex = _Example(row["source"], ex.captions, ex.qa)
      extra.append(ex)
    ex.edit = row
  return list(examples.values()) + extra


def _record(src: str, ex: _Example, params: WorldParams) -> dict:
  image = load_image(os.path.join(src, ex.image), params)
  target = np.zeros((0, 0, 3), np.uint8)
  if ex.edit is not None:
    target = load_image(os.path.join(src, ex.edit["target"]), params, image.shape[:2])
  return {"image": image, "objects": "[]", "grid": np.int32(0),
          "captions": json.dumps(ex.captions), "qa": json.dumps(ex.qa),
          "edit": json.dumps({"kind": "user"} if ex.edit else None),
          "edit_instructions": json.dumps([ex.edit["instruction"]] if ex.edit else []),
          "target_image": target, "target_objects": "[]"}


def dataset_name(src: str) -> str:
  return "folder_" + (re.sub(r"[^a-z0-9_]", "_", os.path.basename(os.path.normpath(src)).lower())
                      or "data")


def import_folder(src: str, data_dir: str, params: WorldParams, *, name: str = "") -> dict:
  """Converts folder `src`; returns {name, dir, examples, skipped: {reason: count}}."""
  import tensorflow_datasets as tfds
  from array_record.python.array_record_module import ArrayRecordWriter

  from arm_jax.data.shapes_world import image_features
  if not os.path.isfile(os.path.join(src, "captions.jsonl")):
    raise UserError(f"{src} has no captions.jsonl; put one json line per image there: "
                    f'{{"image": "file.png", "caption": "..."}}')
  name = name or dataset_name(src)
  out = os.path.join(data_dir, name, VERSION)
  skipped: collections.Counter = collections.Counter()
  examples = _collect(src, skipped)
  os.makedirs(out, exist_ok=True)
  template = tfds.core.ShardedFileTemplate(data_dir=out, dataset_name=name, split="train",
                                           filetype_suffix="array_record")
  path = os.fspath(template.sharded_filepath(shard_index=0, num_shards=1))
  features = image_features()
  writer = ArrayRecordWriter(path, "group_size:1")
  index = {"t2i": [], "und": [], "edit": []}
  size = kept = 0
  for ex in tqdm.tqdm(examples, unit=" examples", desc=f"import {name}"):
    try:
      record = features.serialize_example(_record(src, ex, params))
    except SkipRow as e:
      skipped[e.kind] += 1
      logging.warning("skipped %s: %s", ex.image, e)
      continue
    writer.write(record)
    size += len(record)
    for fmt, ok in (("t2i", ex.captions), ("und", ex.captions or ex.qa), ("edit", ex.edit)):
      if ok:
        index[fmt].append(kept)
    kept += 1
  writer.close()
  if not kept:
    raise UserError(f"no usable rows in {src} ({sum(skipped.values())} skipped; reasons logged "
                    f"above); fix captions.jsonl and the image files")
  tfds.folder_dataset.write_metadata(
      data_dir=out, features=features, version=VERSION, check_data=False,
      filename_template=template, split_infos=[tfds.core.SplitInfo(
          name="train", shard_lengths=[kept], num_bytes=size, filename_template=template)])
  with open(os.path.join(out, FORMATS_INDEX), "w") as f:
    json.dump({"train": index}, f)
  return {"name": name, "dir": out, "examples": kept, "skipped": dict(skipped)}
