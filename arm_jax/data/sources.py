"""Opening datasets by name as random-access sources of uniform records.

Two kinds of tfds dataset are read (always from ArrayRecord, never with TensorFlow):
  * our example format (shapes_world, and folders converted by `build-data --from`): features of
    shapes_world.image_features(), text fields as json;
  * any other tfds dataset with an image and a text feature, named by config.data.dataset (or
    data.web_dataset) with the feature keys data.image_key / data.text_key.
Both come out as the same record:
  {"image": [H, W, 3] uint8, "captions": [str], "qa": [{question, answer, ...}],
   "instructions": [str], "target_image": [H, W, 3] uint8 or None,
   "objects": [{shape, color, size, row, col}], "edit": {kind, grid, before, after} or None,
   "target_objects": [...]}     (ground truth: empty / None where a dataset has none)
"""
from __future__ import annotations

import dataclasses
import io
import json
import os

import numpy as np

from arm_jax.errors import UserError

OUR_FEATURES = ("image", "captions", "qa", "edit_instructions", "target_image")
FORMATS_INDEX = "formats.json"   # folder datasets: per split, which examples serve which format


class DataError(UserError):
  """A dataset that is missing, corrupt, or lacks what the config asks of it."""


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def decode_image(value, name: str = "image") -> np.ndarray:
  """A tfds image value (uint8 array, or encoded PNG/JPEG bytes) -> [H, W, 3] uint8."""
  if isinstance(value, (bytes, np.bytes_)):
    from PIL import Image
    value = np.asarray(Image.open(io.BytesIO(value)).convert("RGB"))
  value = np.asarray(value)
  if value.ndim == 2:
    value = value[..., None]
  if value.ndim != 3 or value.shape[-1] not in (1, 3, 4) or value.dtype != np.uint8:
    raise DataError(f"feature '{name}' is {value.dtype} {value.shape}, not an [H, W, 1|3|4] "
                    f"uint8 image; set data.image_key to an image feature")
  if value.shape[-1] == 1:
    value = np.repeat(value, 3, axis=-1)
  return value[..., :3]


def fit_image(im, params, hw: tuple[int, int] | None = None) -> np.ndarray:
  """PIL RGB image -> [h, w, 3] uint8: centre-cropped to the nearest of params.aspect_ratios (or
  to `hw`) and resized to that size (long side params.image_size), as the tokenizer expects."""
  from PIL import Image
  w, h = im.size
  if hw is None:
    ratio = min(params.aspect_ratios, key=lambda r: abs(np.log((r[0] / r[1]) / (h / w))))
    hw = params.image_hw(ratio)
  th, tw = hw
  if (h, w) != (th, tw):
    scale = min(h / th, w / tw)
    ch, cw = int(round(th * scale)), int(round(tw * scale))
    top, left = (h - ch) // 2, (w - cw) // 2
    im = im.crop((left, top, left + cw, top + ch)).resize((tw, th), Image.Resampling.BICUBIC)
  return np.asarray(im, np.uint8)


# --- locating and opening ---------------------------------------------------------------------

def _latest_version_dir(path: str) -> str | None:
  """A prepared tfds dataset dir (with dataset_info.json) at `path` or its newest version."""
  if os.path.isfile(os.path.join(path, "dataset_info.json")):
    return path
  if not os.path.isdir(path):
    return None
  versions = sorted((d for d in os.listdir(path) if d[:1].isdigit() and
                     os.path.isfile(os.path.join(path, d, "dataset_info.json"))),
                    key=lambda v: tuple(int(x) for x in v.split(".") if x.isdigit()))
  return os.path.join(path, versions[-1]) if versions else None


def _known_datasets(data_dir: str) -> list[str]:
  out = []
  if os.path.isdir(data_dir):
    for name in sorted(os.listdir(data_dir)):
      top = os.path.join(data_dir, name)
      if _latest_version_dir(top):
        out.append(name)
      elif os.path.isdir(top):
        out += [f"{name}/{c}" for c in sorted(os.listdir(top))
                if _latest_version_dir(os.path.join(top, c))]
  return out


def open_builder(name: str, data_dir: str):
  """A prepared tfds builder for `name` ('ds', 'ds/config' or a directory) in `data_dir`."""
  import tensorflow_datasets as tfds
  local = _latest_version_dir(name) or _latest_version_dir(os.path.join(data_dir, name))
  if local:
    return tfds.builder_from_directory(local)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:   # DatasetNotFoundError and friends carry pages of text
    known = ", ".join(_known_datasets(data_dir)) or "none"
    raise DataError(f"dataset '{name}' not found in {data_dir} (prepared there: {known}); set "
                    f"data.dataset to one of them, run `arm-jax build-data`, or prepare it with "
                    f"tfds (file_format=array_record)") from e
  if not builder.is_prepared():
    raise DataError(f"dataset '{name}' is known to tfds but not prepared in {data_dir}; prepare "
                    f"it there with file_format=array_record")
  return builder


def open_split(builder, split: str, decoders=None):
  """tfds data source of one split (random access over ArrayRecord)."""
  splits = list(builder.info.splits.keys())
  if split not in splits:
    raise DataError(f"dataset {builder.info.full_name} has no split '{split}' (it has "
                    f"{', '.join(splits)})")
  try:
    return builder.as_data_source(split=split, decoders=decoders)
  except Exception as e:
    raise DataError(f"cannot read split '{split}' of {builder.info.full_name} as ArrayRecord "
                    f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                    f"re-prepare it with file_format=array_record") from e


def check_readable(source, where: str) -> None:
  """Reads the first and last record so a truncated file fails now, in one line."""
  for i in {0, len(source) - 1} if len(source) else ():
    try:
      source[i]
    except Exception as e:
      raise DataError(f"{where} is truncated or corrupt (reading record {i}: "
                      f"{type(e).__name__}); delete it and rebuild with `arm-jax build-data`") \
          from e


# --- uniform records ----------------------------------------------------------------------------

@dataclasses.dataclass
class RecordSource:
  """Random access to uniform records (module docstring) over one split of a tfds dataset."""
  source: object
  ours: bool
  image_key: str = "image"
  text_key: str = "caption"
  name: str = ""
  images: bool = True    # False: image fields come back None (codes are precomputed)
  params: object = None  # WorldParams: other datasets' images are fitted to its sizes
  # Records kept after their first read, up to this many (0 = none). The packed pretraining
  # mixture reads each record dozens of times; parsing it again was half of a shapes_cells
  # batch's input time.
  memo_limit: int = 0
  _memo: dict = dataclasses.field(default_factory=dict, init=False, repr=False,
                                 compare=False)

  def __len__(self) -> int:
    return len(self.source)

  def __iter__(self):
    # ArrayRecord raises ValueError past the end, not the IndexError the sequence protocol needs
    return (self[i] for i in range(len(self)))

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    record = self._memo.get(index)
    if record is None:
      record = self._read(index)
      if len(self._memo) < self.memo_limit:
        self._memo[index] = record
    return record

  def _read(self, index: int) -> dict:
    raw = self.source[index]
    if not self.ours:
      return {"image": self._fit(decode_image(raw[self.image_key], self.image_key))
                       if self.images else None,
              "captions": [_text(raw[self.text_key])], "qa": [], "instructions": [],
              "target_image": None, "objects": [], "grid": 0, "edit": None,
              "target_objects": []}
    target = np.asarray(raw["target_image"]) if self.images else np.zeros(0)
    return {"image": np.asarray(raw["image"]) if self.images else None,
            "captions": json.loads(raw["captions"]), "qa": json.loads(raw["qa"]),
            "instructions": json.loads(raw["edit_instructions"]),
            "target_image": target if target.size else None,
            "objects": json.loads(raw["objects"]), "grid": int(raw["grid"]),
            "edit": json.loads(raw["edit"]),
            "target_objects": json.loads(raw["target_objects"])}


  def _fit(self, image: np.ndarray) -> np.ndarray:
    if self.params is None:
      return image
    from PIL import Image
    return fit_image(Image.fromarray(image), self.params)


def open_records(name: str, data_dir: str, split: str, *, image_key: str = "image",
                 text_key: str = "caption", images: bool = True,
                 params=None, memo_limit: int = 0) -> RecordSource:
  """Uniform records of `split` of dataset `name` (ours, or any tfds image+text dataset).

  images=False skips decoding the image fields (the pipeline reads precomputed codes instead);
  `params` (WorldParams) fits other datasets' images to the configured sizes; up to
  `memo_limit` records are kept in memory after their first read.
  """
  import tensorflow_datasets as tfds
  builder = open_builder(name, data_dir)
  features = builder.info.features
  ours = all(k in features for k in OUR_FEATURES)
  if not ours:
    missing = [k for k in (image_key, text_key) if k not in features]
    if missing:
      raise DataError(f"dataset '{name}' has no feature '{missing[0]}' (it has "
                      f"{', '.join(features.keys())}); set data.image_key / data.text_key")
  keys = ("image", "target_image") if ours else (image_key,)
  skip = None if images else {k: tfds.decode.SkipDecoding() for k in keys}
  source = open_split(builder, split, skip)
  check_readable(source, f"split '{split}' of {builder.data_dir}")
  return RecordSource(source, ours, image_key, text_key, str(builder.data_dir), images, params,
                      memo_limit)


def format_indices(records: RecordSource, split: str) -> dict[str, np.ndarray]:
  """{'t2i' | 'und' | 'edit': indices of the examples that have captions / captions or QA / an
  edit}. Folder datasets list them in formats.json; shapes_world examples have everything; other
  tfds datasets have captions only."""
  every = np.arange(len(records))
  if not records.ours:
    return {"t2i": every, "und": every, "edit": every[:0]}
  path = os.path.join(records.name, FORMATS_INDEX)
  if not os.path.exists(path):
    return {"t2i": every, "und": every, "edit": every}
  with open(path) as f:
    table = json.load(f).get(split, {})
  return {k: np.asarray(table.get(k, []), np.int64) for k in ("t2i", "und", "edit")}


def dataset_records(config, data_dir: str, split: str, *, images: bool = True) -> RecordSource:
  """The records of config.data.dataset ('shapes_world' = the build for this config's data)."""
  d = config.data
  name = d.dataset
  if name == "shapes_world":
    from arm_jax.data.shapes_world import builder_config
    name = os.path.join(data_dir, "shapes_world", builder_config(config).name)
    if not _latest_version_dir(name):
      raise DataError(f"shapes_world is not built in {data_dir} for this config; run "
                      f"`arm-jax build-data` with the same config first")
  return open_records(name, data_dir, split, image_key=d.image_key, text_key=d.text_key,
                      images=images, params=world_params(config),
                      memo_limit=0 if images else d.memo_records)


def world_params(config):
  from arm_jax.data.shapes_examples import WorldParams
  return WorldParams.from_config(config)
