"""Training batches: text ids and masks, shape twins as hard negatives, determinism, probes."""
import numpy as np
import pytest

from arm_jax.config import load_config
from arm_jax.data import world
from arm_jax.eval.detector import parse_scene
from arm_jax.model.vocab import VocabLayout
from arm_jax.tokenizer import data as data_lib


class _Words:
  """A stand-in text tokenizer: one id per word (enough to check padding and masks)."""

  def encode(self, text):
    return [len(w) for w in text.split()]


def test_encode_texts_pads_with_eos_then_pad_and_truncates():
  vocab = VocabLayout(text_size=50, max_grid=8, codebook_size=10)
  ids, mask = data_lib.encode_texts(_Words(), ["a bb ccc", "x " * 20], 6, vocab)
  np.testing.assert_array_equal(ids[0], [1, 2, 3, vocab.eos, vocab.pad, vocab.pad])
  np.testing.assert_array_equal(mask[0], [1, 1, 1, 1, 0, 0])
  assert ids[1, -1] == vocab.eos and mask[1].all()   # truncated, still ends in <eos>


def test_shape_twins_differ_only_in_shape():
  rng = np.random.default_rng(0)
  for _ in range(50):
    scene = world.sample_scene(rng, 3, 3, exclude=data_lib.HELD_OUT)
    twin = data_lib.shape_twin(scene, rng)
    for a, b in zip(scene.objects, twin.objects):
      assert (a.color, a.size, a.row, a.col) == (b.color, b.size, b.row, b.col)
      assert a.shape != b.shape and (b.color, b.shape) not in data_lib.HELD_OUT


def test_batches_are_deterministic_and_paired():
  cfg = load_config("shapes_tiny", ["--config.data.image_size=32"])
  ds = data_lib.image_text_dataset(cfg, _Words(), batch_size=4, seed=3)
  a, b = ds[5], ds[5]
  assert a["image"].shape == (4, 32, 32, 3) and a["text"].shape == (4, cfg.teacher.text_len)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(ds[6]["image"], a["image"])
  # Rows 0/1 are twins: same colours in the same places, so same non-background pixel set.
  bg = np.array(world.BACKGROUND)
  assert not np.array_equal(a["image"][0], a["image"][1])
  colours = lambda im: {tuple(c) for c in im.reshape(-1, 3)} - {tuple(bg)}
  assert colours(a["image"][0]) == colours(a["image"][1])


@pytest.mark.parametrize("perception_data", ["world", "train"])
def test_only_world_perception_data_shows_the_held_out_pairs(perception_data):
  """The rendered stream (scenes and their shape twins) holds out the pairs only for 'train'."""
  cfg = load_config("shapes_tiny", [f"--config.data.perception_data={perception_data}"])
  ds = data_lib.image_text_dataset(cfg, _Words(), batch_size=16, seed=0)
  pairs = {(o.color, o.shape) for i in range(4) for image in ds[i]["image"]
           for o in parse_scene(image, cfg.data.grid).objects}
  assert len(pairs) > 10   # the detector reads the images
  assert bool(pairs & data_lib.HELD_OUT) == (perception_data == "world")
  assert data_lib.perception_records(cfg, "/nonexistent") is None


def test_zero_shot_probe_labels_match_pixels():
  cfg = load_config("shapes_tiny")
  images, colors, shapes = data_lib.zero_shot_set(cfg, 36, seed=0)
  assert sorted(set(zip(colors, shapes))) == [(c, s) for c in range(6) for s in range(3)]
  names = list(world.COLORS)
  for image, c in zip(images, colors):
    assert (image.reshape(-1, 3) == world.COLORS[names[c]]).all(-1).any()
  prompts, p_col, p_shp = data_lib.class_prompts()
  assert prompts[0] == f"a {names[p_col[0]]} {world.SHAPES[p_shp[0]]}." and len(prompts) == 18
