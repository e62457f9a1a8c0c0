"""The encode/decode API other stages use: shapes, dtypes, ranges and one-line input errors."""
import numpy as np
import pytest
from flax import nnx

from arm_jax.config import load_config
from arm_jax.tokenizer.api import TokenizerInputError, VisualTokenizer, load_visual_tokenizer
from arm_jax.tokenizer.train_tokenizer import tokenizer_fn
from arm_jax.tokenizer.weights import MissingCheckpointError


@pytest.fixture(scope="module")
def vt():
  cfg = load_config("shapes_tiny", ["--config.data.image_size=32",
                                    "--config.tokenizer.d_model=32",
                                    "--config.tokenizer.n_layers=1",
                                    "--config.tokenizer.decoder_layers=1",
                                    "--config.tokenizer.dtype='float32'"])
  return VisualTokenizer(tokenizer_fn(cfg)(nnx.Rngs(0)), chunk=4)


def test_encode_decode_shapes_and_chunking(vt):
  images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
  codes = vt.encode(images)
  assert codes.shape == (6, 4, 4) and codes.dtype == np.int32
  assert 0 <= codes.min() and codes.max() < vt.codebook_size == 240
  # Chunked (4 + padded 2) gives the same codes as one image at a time.
  np.testing.assert_array_equal(codes[5:], vt.encode(images[5:]))
  out = vt.decode(codes)
  assert out.shape == (6, 32, 32, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out[:1], vt.decode(codes[:1]))
  assert vt.encode(images[:0]).shape == (0, 4, 4)


@pytest.mark.parametrize("images, words", [
    (np.zeros((2, 64, 64, 3), np.uint8), "[N, 32, 32, 3]"),
    (np.zeros((32, 32, 3), np.uint8), "[N, 32, 32, 3]"),
    (np.zeros((2, 32, 32, 4), np.uint8), "RGB"),
    (np.zeros((2, 32, 32, 3), np.float32), "uint8"),
])
def test_bad_images_one_line(vt, images, words):
  with pytest.raises(TokenizerInputError) as e:
    vt.encode(images)
  assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("codes, words", [
    (np.full((1, 4, 4), 1000), "out of range"),
    (np.full((1, 4, 4), -1), "out of range"),
    (np.zeros((1, 8, 8), np.int32), "[N, 4, 4]"),
    (np.zeros((1, 4, 4), np.float32), "integer"),
])
def test_bad_codes_one_line(vt, codes, words):
  with pytest.raises(TokenizerInputError) as e:
    vt.decode(codes)
  assert words in str(e.value) and "\n" not in str(e.value)


def test_missing_checkpoint_says_what_to_run(tmp_path):
  cfg = load_config("shapes_tiny")
  with pytest.raises(MissingCheckpointError, match="train-tokenizer"):
    load_visual_tokenizer(cfg, str(tmp_path))
