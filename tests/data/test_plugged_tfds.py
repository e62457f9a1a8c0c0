"""Any tfds dataset with an image and a text feature plugs in by name and feature keys."""
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from arm_jax.data import codes as codes_lib
from arm_jax.data import pipeline
from arm_jax.data.build import build_data
from arm_jax.data.sources import dataset_records
from arm_jax.errors import UserError


class TinyCaptioned(tfds.core.GeneratorBasedBuilder):
  """Six 40x32 PNG images (tfds Image feature) with a caption each, under other feature keys."""
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "picture": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
        "alt_text": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    for i in range(6):
      path = f"{self._png_dir}/{i}.png"
      Image.new("RGB", (40, 32), (40 * i, 200, 10)).save(path)
      yield i, {"picture": path, "alt_text": f"picture number {i}"}


@pytest.fixture(scope="module")
def plugged(tmp_path_factory, world):
  root = tmp_path_factory.mktemp("plugged")
  TinyCaptioned._png_dir = str(root)
  TinyCaptioned(data_dir=str(root / "data")).download_and_prepare(file_format="array_record")
  return str(root / "data")


def _config(world, **data):
  cfg = world.config.copy_and_resolve_references()
  for k, v in data.items():
    setattr(cfg.data, k, v)
  return cfg


def test_plugged_dataset_trains_t2i_and_captioning(world, plugged, tmp_path):
  cfg = _config(world, dataset="tiny_captioned", image_key="picture", text_key="alt_text",
                mixture=(("t2i", 1.0), ("und", 1.0)))
  build_data(cfg, plugged)   # the text tokenizer, trained on its captions
  records = dataset_records(cfg, plugged, "train")
  for i in range(len(records)):
    r = records[i]
    k = int(r["captions"][0].rsplit(" ", 1)[1])           # tfds shuffled the keys
    assert r["captions"] == [f"picture number {k}"]
    assert r["image"].shape == (64, 64, 3)                # 40x32 cropped and resized
    assert r["image"][32, 32].tolist() == [40 * k, 200, 10]
  codes_dir = str(tmp_path / "codes")
  codes_lib.write_codes(world.encode, records, codes_lib.codes_path(codes_dir, records, "train"))
  batch = next(pipeline.make_train_iterator(cfg, plugged, codes_dir))
  assert batch["inputs"].shape == (4, cfg.train.seq_len) and batch["loss_mask"].sum() > 0


def test_plugged_dataset_as_web_pairs(world, plugged, tmp_path):
  cfg = _config(world, web_dataset="tiny_captioned", web_image_key="picture",
                web_text_key="alt_text", mixture=(("web", 1.0),), cond_dropout=0.0)
  import shutil
  shutil.copytree(world.data_dir, tmp_path / "data")
  shutil.copytree(f"{plugged}/tiny_captioned", tmp_path / "data" / "tiny_captioned")
  it = pipeline.make_train_iterator(cfg, str(tmp_path / "data"), "", encode=world.encode)
  rows = next(it)
  assert (rows["loss_mask"].sum(axis=1) == 64 + 4).all()


def test_plugged_dataset_has_no_edits(world, plugged):
  cfg = _config(world, dataset="tiny_captioned", image_key="picture", text_key="alt_text",
                mixture=(("edit", 1.0),))
  build_data(cfg, plugged)
  with pytest.raises(UserError, match="has no edit triplets for 'edit' rows") as e:
    pipeline.make_train_iterator(cfg, plugged, "", encode=world.encode)
  assert "\n" not in str(e.value)


def test_wrong_feature_key_is_a_one_line_error(world, plugged):
  cfg = _config(world, dataset="tiny_captioned", image_key="image", text_key="alt_text")
  with pytest.raises(UserError, match="has no feature 'image'.*set data.image_key") as e:
    dataset_records(cfg, plugged, "train")
  assert "\n" not in str(e.value)
