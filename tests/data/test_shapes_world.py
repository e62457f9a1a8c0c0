import glob
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from arm_jax.data import knowledge, shapes_world
from arm_jax.data.build import build_data
from arm_jax.data.shapes_examples import HELD_OUT, WorldParams, make_example
from arm_jax.data.sources import dataset_records


def _files(path):
  return {os.path.basename(f): open(f, "rb").read()
          for f in sorted(glob.glob(os.path.join(path, "*.array_record*")))}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, helpers):
  tiny_config = helpers.tiny_config
  cfg = tiny_config()
  a = _files(shapes_world.prepare(cfg, str(tmp_path / "a")))
  b = _files(shapes_world.prepare(cfg, str(tmp_path / "b")))
  c = _files(shapes_world.prepare(tiny_config("--config.data.seed=1"), str(tmp_path / "c")))
  assert a and a == b
  assert set(a) == set(c) and a != c


def test_worker_pool_writes_the_same_bytes(tmp_path, monkeypatch, helpers):
  cfg = helpers.tiny_config()
  serial = _files(shapes_world.prepare(cfg, str(tmp_path / "serial")))
  monkeypatch.setattr(shapes_world, "_POOL_MIN_EXAMPLES", 0)
  monkeypatch.setattr(shapes_world, "_SHARD", 16)   # 2 train shards
  pooled_dir = shapes_world.prepare(cfg, str(tmp_path / "pooled"))
  src = tfds.builder_from_directory(pooled_dir).as_data_source(split="train")
  ref = tfds.builder_from_directory(
      os.path.dirname(next(iter(glob.glob(str(tmp_path / "serial/*/*/*/dataset_info.json")))))
  ).as_data_source(split="train")
  assert len(_files(pooled_dir)) == 4 and len(serial) == 3
  for i in (0, 15, 16, 31):
    assert np.array_equal(src[i]["image"], ref[i]["image"]) and src[i]["qa"] == ref[i]["qa"]


def test_record_i_is_example_i_with_its_ground_truth(world):
  records = dataset_records(world.config, world.data_dir, "validation")
  params = WorldParams.from_config(world.config)
  for i in (0, 5):
    ex = make_example(params, "validation", i)
    rec = records.source[i]
    assert np.array_equal(rec["image"], ex["image"])
    assert np.array_equal(rec["target_image"], ex["target_image"])
    assert json.loads(rec["objects"]) == json.loads(ex["objects"])
    assert json.loads(rec["edit"])["kind"] in ("recolor", "add", "remove", "move", "resize")
    assert len(json.loads(rec["qa"])) == 6 and json.loads(rec["captions"])
    uniform = records[i]
    assert uniform["objects"] == json.loads(ex["objects"])
    assert uniform["edit"] == json.loads(ex["edit"])
    assert uniform["target_objects"] == json.loads(ex["target_objects"])


def test_test_split_is_compositional(world):
  def pairs(split):
    records = dataset_records(world.config, world.data_dir, split)
    return [{(o["color"], o["shape"]) for o in json.loads(records.source[i]["objects"])}
            for i in range(len(records))]
  assert all(not (p & HELD_OUT) for p in pairs("train") + pairs("validation"))
  assert all(p & HELD_OUT for p in pairs("test"))


def test_build_is_idempotent_and_text_split_holds_knowledge(world):
  stamp = {f: os.path.getmtime(f) for f in glob.glob(world.info["images"] + "/*")}
  again = build_data(world.config, world.data_dir)
  assert again["images"] == world.info["images"] and again["text_tokenizer"] == \
      world.info["text_tokenizer"]
  assert stamp == {f: os.path.getmtime(f) for f in glob.glob(world.info["images"] + "/*")}
  text = tfds.builder_from_directory(world.info["text"]).as_data_source(split="train")
  sentences = [text[i]["text"].decode() for i in range(len(text))]
  assert sentences == knowledge.knowledge_sentences() and "grass is green." in sentences


def test_aspect_ratios_give_other_image_shapes(tmp_path, helpers):
  cfg = helpers.tiny_config("--config.data.aspect_ratios=((1, 1), (3, 4))")
  src = tfds.builder_from_directory(shapes_world.prepare(cfg, str(tmp_path))).as_data_source(
      split="train")
  shapes = {src[i]["image"].shape for i in range(len(src))}
  assert shapes == {(64, 64, 3), (48, 64, 3)}


def test_missing_build_is_a_one_line_error(tmp_path, helpers):
  from arm_jax.errors import UserError
  with pytest.raises(UserError, match="build-data") as e:
    dataset_records(helpers.tiny_config(), str(tmp_path), "train")
  assert "\n" not in str(e.value)
