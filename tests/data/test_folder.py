import json
import logging

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from arm_jax import cli
from arm_jax.data import pipeline
from arm_jax.data.folder import import_folder
from arm_jax.data.shapes_examples import WorldParams
from arm_jax.data.sources import FORMATS_INDEX, open_records
from arm_jax.errors import UserError

PARAMS = WorldParams(image_size=64, multiple_of=8)


def _save(path, mode, size, color):
  Image.new(mode, size, color).save(path)


@pytest.fixture
def folder(tmp_path):
  d = tmp_path / "my_pics"
  d.mkdir()
  _save(d / "rgb.png", "RGB", (64, 64), (200, 10, 10))
  _save(d / "gray.png", "L", (80, 80), 128)
  _save(d / "rgba.png", "RGBA", (64, 64), (0, 0, 255, 255))
  _save(d / "pal.png", "P", (64, 64), 3)
  _save(d / "wide.jpg", "RGB", (100, 70), (0, 200, 0))
  _save(d / "tiny.png", "RGB", (10, 10), (1, 2, 3))
  _save(d / "after.png", "RGB", (64, 64), (10, 10, 200))
  good = (d / "rgb.png").read_bytes()
  (d / "cut.png").write_bytes(good[: len(good) // 2])
  captions = [{"image": "rgb.png", "caption": "a red picture"},
              {"image": "gray.png", "caption": "a grey picture"},
              {"image": "rgba.png", "caption": "a blue picture"},
              {"image": "pal.png", "caption": "a palette picture"},
              {"image": "wide.jpg", "caption": "a wide green picture"},
              {"image": "tiny.png", "caption": "too small"},
              {"image": "cut.png", "caption": "truncated file"},
              {"image": "gone.png", "caption": "missing file"},
              {"image": "rgb.png", "caption": ""}]
  lines = [json.dumps(c) for c in captions] + ["{not json"]
  (d / "captions.jsonl").write_text("\n".join(lines) + "\n")
  (d / "qa.jsonl").write_text(json.dumps({"image": "rgb.png", "question": "what color?",
                                          "answer": "red"}) + "\n")
  (d / "edits.jsonl").write_text(
      json.dumps({"source": "rgb.png", "target": "after.png", "instruction": "make it blue"})
      + "\n" + json.dumps({"source": "after.png", "target": "rgb.png",
                           "instruction": "make it red"}) + "\n")
  return d


def test_import_converts_skips_and_indexes(folder, tmp_path, caplog):
  caplog.set_level(logging.WARNING)
  result = import_folder(str(folder), str(tmp_path / "data"), PARAMS)
  assert result["name"] == "folder_my_pics"
  # rgb (+qa +edit), gray, rgba, pal, wide, after (edit only) are kept
  assert result["examples"] == 6
  assert result["skipped"] == {"empty caption": 1, "bad json": 1, "image too small": 1,
                               "unreadable image": 1, "missing image": 1}
  for reason in ("truncated", "gone.png", "tiny.png is 10x10", "line 10"):
    assert reason in caplog.text
  src = tfds.builder_from_directory(result["dir"]).as_data_source(split="train")
  images = [src[i]["image"] for i in range(len(src))]
  assert all(im.shape == (64, 64, 3) and im.dtype == np.uint8 for im in images)
  assert images[1][0, 0].tolist() == [128, 128, 128]          # grayscale -> RGB
  assert images[2][0, 0].tolist() == [0, 0, 255]              # RGBA -> RGB
  assert images[4][32, 32].tolist() == [0, 200, 0]            # 100x70 cropped and resized
  with open(f"{result['dir']}/{FORMATS_INDEX}") as f:
    index = json.load(f)["train"]
  assert index == {"t2i": [0, 1, 2, 3, 4], "und": [0, 1, 2, 3, 4], "edit": [0, 5]}
  rec = open_records(result["dir"], str(tmp_path / "data"), "train")[0]
  assert rec["qa"][0]["answer"] == "red" and rec["instructions"] == ["make it blue"]
  assert rec["target_image"][0, 0].tolist() == [10, 10, 200]


def test_folder_dataset_feeds_every_format(folder, tmp_path, helpers):
  data_dir = tmp_path / "data"
  result = import_folder(str(folder), str(data_dir), PARAMS)
  cfg = helpers.tiny_config(f"--config.data.dataset={result['name']}",
                            "--config.data.mixture=(('t2i', 1.0), ('und', 1.0), ('edit', 1.0))")
  from arm_jax.data.build import build_data
  build_data(cfg, str(data_dir))   # trains the text tokenizer on the folder's texts
  it = pipeline.make_train_iterator(cfg, str(data_dir), "", encode=helpers.stand_in_encoder(cfg))
  batch = next(it)
  assert batch["inputs"].shape == (4, cfg.train.seq_len) and batch["loss_mask"].sum() > 0


def test_no_captions_file_and_no_usable_rows(tmp_path):
  with pytest.raises(UserError, match="has no captions.jsonl"):
    import_folder(str(tmp_path), str(tmp_path / "data"), PARAMS)
  (tmp_path / "captions.jsonl").write_text(json.dumps({"image": "x.png", "caption": "x"}) + "\n")
  with pytest.raises(UserError, match="no usable rows") as e:
    import_folder(str(tmp_path), str(tmp_path / "data"), PARAMS)
  assert "\n" not in str(e.value)


def test_cli_build_data_from_folder(folder, tmp_path, capsys):
  rc = cli.main(["build-data", "--from", str(folder), "--workdir", str(tmp_path / "run"),
                 "--config.data.num_train=8"])
  out = capsys.readouterr().out
  assert rc == 0
  assert "imported 6 examples" in out and "skipped 5 rows" in out
  assert "--config.data.dataset=folder_my_pics" in out and "text_tokenizer" in out
