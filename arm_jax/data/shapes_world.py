"""The `shapes_world` tfds builder: ArrayRecord files readable without TensorFlow.

Two kinds of builder config, both named by a digest of what determines their bytes:
  images_<digest>  train / validation / test examples of shapes_examples.make_example
  text_<digest>    train: the knowledge sentences of the text-only split

Images are uint8 Tensor features (the tfds `Image` feature needs TensorFlow to encode); text
fields are json strings. Read with `tfds.builder_from_directory(dir).as_data_source()`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from arm_jax.data import knowledge
from arm_jax.data.shapes_examples import WorldParams, make_example

VERSION = "1.1.0"   # 1.1: knowledge captions
# Below this many examples a build runs in-process (a worker pool costs ~2 s to start).
_POOL_MIN_EXAMPLES = 4096
_SHARD = 5000   # examples per ArrayRecord file

_JSON = tfds.features.Text(doc="json string")


def image_features() -> tfds.features.FeaturesDict:
  """The example format shared by shapes_world and `build-data --from DIR` datasets."""
  # zlib: flat-colour images shrink ~10x, and decompressing costs less than reading raw bytes.
  image = tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8, encoding="zlib")
  return tfds.features.FeaturesDict({
      "image": image,                    # [H, W, 3] uint8
      "objects": _JSON,                  # list of {shape, color, size, row, col}; [] if unknown
      "grid": tfds.features.Tensor(shape=(), dtype=np.int32),   # 0 if unknown
      "captions": _JSON,                 # list of str, the first the most complete
      "qa": _JSON,                       # list of {question, answer, kind, choices}
      "edit": _JSON,                     # {kind, grid, before, after} or null
      "edit_instructions": _JSON,        # list of str (phrasings of the same edit); [] if none
      "target_image": image,             # [H, W, 3] uint8; [0, 0, 3] if no edit
      "target_objects": _JSON,
  })


@dataclasses.dataclass
class ShapesWorldConfig(tfds.core.BuilderConfig):
  params: WorldParams = WorldParams()
  counts: tuple = (("train", 0), ("validation", 0), ("test", 0))
  text_only: bool = False


def builder_config(config, *, text_only: bool = False) -> ShapesWorldConfig:
  """The builder config for `config.data` (its name changes whenever the bytes would)."""
  params = WorldParams.from_config(config)
  d = config.data
  counts = (("train", d.num_train), ("validation", d.num_validation), ("test", d.num_test))
  key = json.dumps(["text", d.seed] if text_only else [dataclasses.asdict(params), counts],
                   sort_keys=True)
  digest = hashlib.sha1(f"{VERSION}:{key}".encode()).hexdigest()[:10]
  return ShapesWorldConfig(name=f"{'text' if text_only else 'images'}_{digest}", version=VERSION,
                           params=params, counts=counts, text_only=text_only)


def _write_shard(job) -> tuple[int, int]:
  """Generates examples [start, stop) of a split into one ArrayRecord file: (count, bytes)."""
  from array_record.python.array_record_module import ArrayRecordWriter
  params, split, start, stop, path = job
  features = image_features()
  writer = ArrayRecordWriter(path, "group_size:1")   # what tfds writes: one record per chunk
  size = 0
  for i in range(start, stop):
    record = features.serialize_example(make_example(params, split, i))
    writer.write(record)
    size += len(record)
  writer.close()
  return stop - start, size


class ShapesWorld(tfds.core.GeneratorBasedBuilder):
  """Procedural scenes of coloured shapes with captions, QA, edits and knowledge sentences.

  Image configs write their shards directly (in parallel, in index order) instead of through
  tfds's shuffling writer, which spills to disk with TensorFlow once a split passes 1 GB. Record
  i of a split is example i, so anything keyed by index (visual codes) lines up with it.
  """

  VERSION = tfds.core.Version(VERSION)
  BUILDER_CONFIGS = []   # always built from a config made by builder_config()
  # Nothing to download. tfds would otherwise look for a checksums file beside this module,
  # which needs the importlib_resources package that tfds does not install.
  code_path = None

  def _info(self) -> tfds.core.DatasetInfo:
    if self.builder_config.text_only:
      features = tfds.features.FeaturesDict({"text": tfds.features.Text()})
    else:
      features = image_features()
    return tfds.core.DatasetInfo(builder=self, features=features, disable_shuffling=True,
                                 homepage="https://arxiv.org/abs/2606.11188")

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}   # the text config only

  def _generate_examples(self):
    for i, sentence in enumerate(knowledge.knowledge_sentences()):
      yield i, {"text": sentence}

  def _download_and_prepare(self, dl_manager, download_config):
    if self.builder_config.text_only:
      return super()._download_and_prepare(dl_manager, download_config)
    cfg = self.builder_config
    splits, jobs = [], []
    for split, n in cfg.counts:
      if n <= 0:
        continue
      template = tfds.core.ShardedFileTemplate(
          data_dir=self.data_path, dataset_name=self.name, split=split,
          filetype_suffix="array_record")
      bounds = list(range(0, n, _SHARD)) + [n]
      paths = [os.fspath(template.sharded_filepath(shard_index=k, num_shards=len(bounds) - 1))
               for k in range(len(bounds) - 1)]
      jobs += [(cfg.params, split, a, b, p) for a, b, p in zip(bounds, bounds[1:], paths)]
      splits.append((split, template, len(paths)))
    results = iter(self._run(jobs))
    infos = []
    for split, template, num_shards in splits:
      done = [next(results) for _ in range(num_shards)]
      infos.append(tfds.core.SplitInfo(name=split, shard_lengths=[c for c, _ in done],
                                       num_bytes=sum(b for _, b in done),
                                       filename_template=template))
    self.info.set_splits(tfds.core.SplitDict(infos))

  @staticmethod
  def _run(jobs):
    total = sum(job[3] - job[2] for job in jobs)
    bar = tqdm.tqdm(total=total, unit=" examples", desc="shapes_world")
    workers = min(os.cpu_count() or 1, len(jobs))
    if total < _POOL_MIN_EXAMPLES or workers < 2:
      for job in jobs:
        yield _write_shard(job)
        bar.update(job[3] - job[2])
    else:
      # spawn, not fork: the caller may hold jax/XLA threads. imap keeps shard order.
      with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for job, result in zip(jobs, pool.imap(_write_shard, jobs)):
          yield result
          bar.update(job[3] - job[2])
    bar.close()


def prepare(config, data_dir: str, *, text_only: bool = False) -> str:
  """Builds (or finds, if already built with the same config) one config; returns its dir."""
  builder = ShapesWorld(data_dir=data_dir, config=builder_config(config, text_only=text_only))
  builder.download_and_prepare(file_format="array_record")
  return str(builder.data_dir)

