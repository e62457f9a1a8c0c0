"""Visual codes of a dataset split: written once by an encoder, read by the input pipeline.

Layout: `<codes_dir>/<dataset id>/<split>.array_record` (+ `.json` metadata). Record i holds the
codes of example i of the split: its image and, when it has an edit, the edit's target image
(the image is the edit's source). A record is int32: [h, w, th, tw, codes (h*w), target (th*tw)].

`write_codes` takes any batched encoder `encode(images [N, H, W, 3] uint8) -> [N, h, w] int32`;
the visual tokenizer provides the real one. `patch_color_encoder` is a stand-in (mean colour of
each patch, quantised) so that everything downstream runs and is testable before a tokenizer is
trained; `KindCodec` is the perfect tokenizer of a cell-aligned shapes world (one code per
object kind), for tests that need a model to learn.
"""
from __future__ import annotations

import json
import os
import re
from typing import Callable

import numpy as np
import tqdm

from arm_jax.data import world
from arm_jax.data.sources import DataError, RecordSource, check_readable

Encoder = Callable[[np.ndarray], np.ndarray]


# --- the stand-in encoder ---------------------------------------------------------------------

def patch_color_levels(image_vocab_size: int) -> int:
  """Largest L with L**3 <= image_vocab_size (codes index an L x L x L colour cube)."""
  levels = int(round(image_vocab_size ** (1 / 3)))
  while levels ** 3 > image_vocab_size:
    levels -= 1
  return levels


def patch_color_encoder(patch: int, levels: int) -> Encoder:
  """[N, H, W, 3] uint8 -> [N, H/patch, W/patch] int32: each patch's quantised mean colour."""
  def encode(images: np.ndarray) -> np.ndarray:
    n, h, w, _ = images.shape
    mean = images.reshape(n, h // patch, patch, w // patch, patch, 3).mean(axis=(2, 4))
    q = np.minimum((mean * levels / 256.0).astype(np.int32), levels - 1)
    return (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]
  return encode


def patch_color_decode(codes: np.ndarray, patch: int, levels: int) -> np.ndarray:
  """Inverse of the stand-in: [N, h, w] codes -> [N, h*patch, w*patch, 3] uint8 mosaic."""
  rgb = np.stack([codes // (levels * levels), (codes // levels) % levels, codes % levels], -1)
  pixels = ((rgb + 0.5) * 256.0 / levels).astype(np.uint8)
  return pixels.repeat(patch, axis=-3).repeat(patch, axis=-2)


class KindCodec:
  """The perfect tokenizer of a shapes world whose patches are its grid cells.

  images [N, S, S, 3] uint8 <-> codes [N, grid, grid] int32: 0 for an empty cell, 1 + k for the
  k-th (shape, colour, size) kind, by the nearest rendered template (exact on renders). It
  stands in for a trained tokenizer in tests; it is not learned and not part of the method.
  """

  def __init__(self, image_size: int, grid: int):
    if image_size % grid:
      raise ValueError(f"KindCodec needs cells of whole pixels: image_size {image_size} is not "
                       f"a multiple of grid {grid}")
    self.cell, self.grid = image_size // grid, grid
    self.kinds = [(s, c, z) for s in world.SHAPES for c in world.COLORS for z in world.SIZES]
    blank = world.render(world.Scene((), 1), self.cell)
    self.templates = np.stack([blank] + [
        world.render(world.Scene((world.Obj(s, c, z, 0, 0),), 1), self.cell)
        for s, c, z in self.kinds]).astype(np.float32)        # [1 + kinds, cell, cell, 3]
    self.codebook_size = len(self.templates)

  def encode(self, images: np.ndarray) -> np.ndarray:
    n, g, p = len(images), self.grid, self.cell
    patches = np.asarray(images, np.float32).reshape(n, g, p, g, p, 3).transpose(0, 1, 3, 2, 4, 5)
    d2 = ((patches[:, :, :, None] - self.templates) ** 2).sum(axis=(-3, -2, -1))
    return d2.argmin(-1).astype(np.int32)

  def decode(self, codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    n, g, p = len(codes), self.grid, self.cell
    tiles = self.templates[np.clip(codes, 0, self.codebook_size - 1)]   # [n, g, g, p, p, 3]
    return tiles.transpose(0, 1, 3, 2, 4, 5).reshape(n, g * p, g * p, 3).astype(np.uint8)


# --- records ------------------------------------------------------------------------------------

def encode_record(codes: np.ndarray, target: np.ndarray | None) -> bytes:
  target = np.zeros((0, 0), np.int32) if target is None else target
  head = np.array([*codes.shape, *target.shape], np.int32)
  return np.concatenate([head, codes.reshape(-1), target.reshape(-1)]).astype(np.int32).tobytes()


def decode_record(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
  """-> (codes [h, w] int32, target codes [th, tw] int32 or None)."""
  flat = np.frombuffer(data, np.int32)
  h, w, th, tw = (int(x) for x in flat[:4])
  codes = flat[4:4 + h * w].reshape(h, w)
  target = flat[4 + h * w:4 + h * w + th * tw].reshape(th, tw) if th * tw else None
  return codes, target


def dataset_id(records: RecordSource) -> str:
  """A directory name for a dataset's codes: its tfds dir, minus the data root and version."""
  parts = [p for p in os.path.normpath(records.name).split(os.sep) if p][-3:]
  if parts and re.fullmatch(r"\d+\.\d+\.\d+", parts[-1]):
    parts = parts[:-1]
  return "__".join(parts[-2:]) or "dataset"


def codes_path(codes_dir: str, records: RecordSource, split: str) -> str:
  return os.path.join(codes_dir, dataset_id(records), f"{split}.array_record")


def _encode_group(encode: Encoder, images: list[np.ndarray]) -> list[np.ndarray]:
  """Encodes images of possibly different shapes, one encoder call per shape."""
  out: list[np.ndarray | None] = [None] * len(images)
  by_shape: dict[tuple, list[int]] = {}
  for i, image in enumerate(images):
    by_shape.setdefault(image.shape, []).append(i)
  for idx in by_shape.values():
    codes = np.asarray(encode(np.stack([images[i] for i in idx])))
    for i, c in zip(idx, codes):
      out[i] = c.astype(np.int32)
  return out


def write_codes(encode: Encoder, records: RecordSource, path: str, *, batch_size: int = 64,
                desc: str = "codes", encoder_id: str = "") -> dict:
  """Encodes every image field of every example of `records` into ArrayRecord file `path`.

  `encoder_id` (e.g. the tokenizer checkpoint) is stored beside the codes; write_dataset_codes
  skips a split whose codes were written by the same non-empty encoder_id.
  """
  from array_record.python.array_record_module import ArrayRecordWriter
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp"
  writer = ArrayRecordWriter(tmp, "group_size:1")
  n = len(records)
  with tqdm.tqdm(total=n, unit=" examples", desc=desc) as bar:
    for start in range(0, n, batch_size):
      batch = [records[i] for i in range(start, min(start + batch_size, n))]
      images = [r["image"] for r in batch]
      targets = [r["target_image"] for r in batch if r["target_image"] is not None]
      codes = _encode_group(encode, images + targets)
      target_codes = iter(codes[len(images):])
      for r, c in zip(batch, codes):
        writer.write(encode_record(c, next(target_codes) if r["target_image"] is not None
                                   else None))
      bar.update(len(batch))
  writer.close()
  os.replace(tmp, path)
  meta = {"num_examples": n, "source": records.name, "encoder_id": encoder_id}
  with open(path + ".json", "w") as f:
    json.dump(meta, f)
  return meta


def write_dataset_codes(config, data_dir: str, codes_dir: str, encode: Encoder, *,
                        encoder_id: str = "", splits=("train", "validation", "test"),
                        batch_size: int = 64) -> dict[str, str]:
  """Codes for every split of config.data.dataset (and data.web_dataset) the pipeline reads.

  What `arm-jax tokenize-dataset` calls with the trained tokenizer's batched encoder. Splits a
  dataset lacks (folders have only 'train') are skipped. Returns {dataset/split: path}.
  """
  from arm_jax.data.sources import dataset_records, open_records, world_params
  d = config.data
  out = {}
  for split in splits:
    opened = []
    try:
      opened.append(dataset_records(config, data_dir, split))
    except DataError as e:
      if "has no split" not in str(e):
        raise
    if d.web_dataset:
      try:
        opened.append(open_records(d.web_dataset, data_dir, split, image_key=d.web_image_key,
                                   text_key=d.web_text_key, params=world_params(config)))
      except DataError as e:
        if "has no split" not in str(e):
          raise
    for records in opened:
      path = codes_path(codes_dir, records, split)
      out[f"{dataset_id(records)}/{split}"] = path
      if encoder_id and os.path.exists(path + ".json"):
        with open(path + ".json") as f:
          meta = json.load(f)
        if meta.get("encoder_id") == encoder_id and meta["num_examples"] == len(records):
          continue
      write_codes(encode, records, path, batch_size=batch_size, encoder_id=encoder_id,
                  desc=f"codes {dataset_id(records)}/{split}")
  return out


class CodesSource:
  """Random access to the codes written by `write_codes`: index -> (codes, target or None)."""

  def __init__(self, path: str, records: RecordSource):
    if not os.path.exists(path) or not os.path.exists(path + ".json"):
      raise DataError(f"no visual codes at {path}; run `arm-jax tokenize-dataset` (or "
                      f"arm_jax.data.codes.write_codes) for this dataset and split first")
    with open(path + ".json") as f:
      meta = json.load(f)
    if meta["num_examples"] != len(records):
      raise DataError(f"codes at {path} cover {meta['num_examples']} examples but the split has "
                      f"{len(records)}; delete them and re-run `arm-jax tokenize-dataset`")
    import grain
    try:
      self._source = grain.sources.ArrayRecordDataSource([path])
    except Exception as e:
      raise DataError(f"visual codes file {path} is truncated or corrupt ({type(e).__name__}); "
                      f"delete it and re-run `arm-jax tokenize-dataset`") from e
    if len(self._source) != len(records):
      raise DataError(f"visual codes file {path} holds {len(self._source)} records, expected "
                      f"{len(records)}: truncated; delete it and re-run `arm-jax tokenize-dataset`")
    check_readable(self._source, f"visual codes file {path}")

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int):
    return decode_record(self._source[int(index)])


class OnTheFlyCodes:
  """The hook for pipelines that take images: codes computed per example by `encode`."""

  def __init__(self, encode: Encoder, records: RecordSource):
    self._encode, self._records = encode, records

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int):
    r = self._records[int(index)]
    images = [r["image"]] + ([r["target_image"]] if r["target_image"] is not None else [])
    codes = _encode_group(self._encode, images)
    return codes[0], (codes[1] if len(codes) > 1 else None)
