import numpy as np
import pytest

from arm_jax.data import codes as codes_lib
from arm_jax.data import world as world_lib
from arm_jax.data.sources import dataset_records
from arm_jax.errors import UserError


def test_patch_color_codes_by_hand():
  image = np.zeros((1, 4, 4, 3), np.uint8)
  image[0, :2, :2] = (255, 0, 0)          # top-left patch red
  image[0, 2:, 2:] = (0, 0, 255)          # bottom-right patch blue
  codes = codes_lib.patch_color_encoder(2, 10)(image)
  assert codes.shape == (1, 2, 2) and codes.dtype == np.int32
  assert codes[0].tolist() == [[900, 0], [0, 9]]   # (r*10 + g)*10 + b
  assert codes_lib.patch_color_levels(1000) == 10 and codes_lib.patch_color_levels(999) == 9


def test_stand_in_decode_inverts_encode_on_shapes_images():
  rng = np.random.default_rng(0)
  images = np.stack([world_lib.render(world_lib.sample_scene(rng), 64) for _ in range(4)])
  enc = codes_lib.patch_color_encoder(8, 10)
  codes = enc(images)
  again = enc(codes_lib.patch_color_decode(codes, 8, 10))
  assert np.array_equal(codes, again) and codes.max() < 1000


def test_record_round_trip():
  c = np.arange(6, dtype=np.int32).reshape(2, 3)
  t = np.arange(4, dtype=np.int32).reshape(2, 2) + 7
  got_c, got_t = codes_lib.decode_record(codes_lib.encode_record(c, t))
  assert np.array_equal(got_c, c) and np.array_equal(got_t, t)
  got_c, got_t = codes_lib.decode_record(codes_lib.encode_record(c, None))
  assert np.array_equal(got_c, c) and got_t is None


def test_written_codes_match_the_images(world):
  records = dataset_records(world.config, world.data_dir, "validation")
  source = codes_lib.CodesSource(
      codes_lib.codes_path(world.codes_dir, records, "validation"), records)
  assert len(source) == len(records)
  for i in (0, len(records) - 1):
    codes, target = source[i]
    r = records[i]
    assert np.array_equal(codes, world.encode(r["image"][None])[0])
    assert np.array_equal(target, world.encode(r["target_image"][None])[0])


def test_encoder_calls_are_batched_by_shape(world):
  calls = []

  def encode(images):
    calls.append(images.shape)
    return world.encode(images)
  images = [np.zeros((64, 64, 3), np.uint8), np.zeros((48, 64, 3), np.uint8),
            np.zeros((64, 64, 3), np.uint8)]
  out = codes_lib._encode_group(encode, images)
  assert sorted(calls) == [(1, 48, 64, 3), (2, 64, 64, 3)]
  assert [o.shape for o in out] == [(8, 8), (6, 8), (8, 8)]


def test_codes_for_another_split_size_are_refused(world, tmp_path):
  records = dataset_records(world.config, world.data_dir, "validation")
  train = dataset_records(world.config, world.data_dir, "train")
  path = codes_lib.codes_path(world.codes_dir, records, "validation")
  with pytest.raises(UserError, match="cover 8 examples but the split has 32") as e:
    codes_lib.CodesSource(path, train)
  assert "\n" not in str(e.value)


def test_write_dataset_codes_covers_the_splits_and_skips_done_work(world, tmp_path):
  calls = []

  def encode(images):
    calls.append(len(images))
    return world.encode(images)
  out = codes_lib.write_dataset_codes(world.config, world.data_dir, str(tmp_path), encode,
                                      encoder_id="tok-step-10")
  assert sorted(k.rsplit("/", 1)[1] for k in out) == ["test", "train", "validation"]
  assert sum(calls) == 2 * (32 + 8 + 8)   # image + edit target of every example
  codes_lib.write_dataset_codes(world.config, world.data_dir, str(tmp_path), encode,
                                encoder_id="tok-step-10")
  assert sum(calls) == 96                   # same encoder: nothing rewritten
  codes_lib.write_dataset_codes(world.config, world.data_dir, str(tmp_path), encode,
                                encoder_id="tok-step-20", splits=("validation",))
  assert sum(calls) == 96 + 16


def test_kind_codec_is_exact_on_cell_aligned_renders():
  codec = codes_lib.KindCodec(48, 3)
  rng = np.random.default_rng(0)
  scenes = [world_lib.sample_scene(rng, 3, 3) for _ in range(40)]
  images = np.stack([world_lib.render(s, 48) for s in scenes])
  codes = codec.encode(images)
  assert codes.shape == (40, 3, 3) and codes.max() < codec.codebook_size == 37
  assert np.array_equal(codec.decode(codes), images)
  for scene, grid in zip(scenes, codes):   # one code per kind: empty cells are 0, objects not
    assert {tuple(map(int, rc)) for rc in np.argwhere(grid > 0)} == scene.cells()
  with pytest.raises(ValueError, match="not a multiple of grid"):
    codes_lib.KindCodec(64, 3)
