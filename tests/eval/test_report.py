"""Report pieces: sections to report.md, figures that record config and seed, tables."""
import json

import numpy as np
from PIL import Image

from arm_jax.config import load_config
from arm_jax.eval import report as rep


def test_figures_record_config_and_seed(tmp_path):
  config = load_config("shapes_tiny")
  prov = rep.provenance(config, seed=42)
  assert prov["config"] == "shapes_tiny" and prov["seed"] == 42
  changed = rep.provenance(load_config("shapes_tiny", ["--config.train.lr=0.5"]), seed=42)
  assert changed["config_sha"] != prov["config_sha"]
  image = np.zeros((16, 24, 3), np.uint8)
  grid = rep.image_grid(str(tmp_path / "g.png"), [("a red circle.", [image, image])], "T2I", prov,
                        ("one", "two"))
  curves = rep.plot_curves(str(tmp_path / "c.png"), {"loss": [(0, 2.0), (10, 1.0)]}, "curves",
                           prov)
  bars = rep.bar_chart(str(tmp_path / "b.png"), {"colors": 0.5, "position": 0.25}, "bars", prov)
  for path in (grid, curves, bars):
    with Image.open(path) as png:
      assert json.loads(png.text["Description"]) == prov


def test_mosaic_places_images_of_any_size():
  a, b = np.full((4, 6, 3), 10, np.uint8), np.full((2, 2, 3), 200, np.uint8)
  out = rep.mosaic([[a, b], [b]], pad=1, fill=0)
  assert out.shape == (2 * (4 + 1) + 1, 2 * (6 + 1) + 1, 3)
  assert (out[1:5, 1:7] == 10).all() and (out[1:3, 8:10] == 200).all()
  assert (out[6:8, 1:3] == 200).all() and (out[6:8, 8:14] == 0).all()


def test_report_is_composed_from_sections(tmp_path):
  config = load_config("shapes_tiny")
  figure = rep.bar_chart(str(tmp_path / "figures" / "f.png"), {"a": 1.0}, "f",
                         rep.provenance(config, 1))
  sections = [rep.Section("Tokenizer", rep.markdown_table([{"metric": "PSNR", "value": 19.6}])),
              rep.Section("Samples", "what the model drew", [figure])]
  path = rep.write_report(str(tmp_path), sections, config=config, seed=1,
                          metrics={"GenEval": 0.5}, title="demo")
  text = open(path).read()
  assert text.index("## Tokenizer") < text.index("## Samples")
  assert "| PSNR | 19.600 |" in text and "![f](figures/f.png)" in text
  assert "seed 1" in text and "shapes_tiny" in text
  assert json.load(open(tmp_path / "metrics.json")) == {"GenEval": 0.5}
  assert json.load(open(tmp_path / "config.json"))["name"] == "shapes_tiny"


def test_markdown_table_columns_and_empty():
  table = rep.markdown_table([{"a": 1, "b": 0.12345}, {"a": 2}], precision=2)
  assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.12 |", "| 2 |  |"]
  assert rep.markdown_table([]) == "_(no rows)_"
