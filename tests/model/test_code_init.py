"""Image-code rows seeded from per-code vectors (model.image_embed_init='tokenizer')."""
import numpy as np
import pytest
from flax import nnx

from arm_jax.config import load_config
from arm_jax.errors import UserError
from arm_jax.model.code_init import init_image_codes, projected_rows
from arm_jax.model.transformer import Decoder, ModelConfig
from arm_jax.tokenizer.api import VisualTokenizer
from arm_jax.tokenizer.code_semantics import code_features
from arm_jax.tokenizer.train_teacher import teacher_fn
from arm_jax.tokenizer.train_tokenizer import tokenizer_fn


def test_projected_rows_keep_relations_and_the_init_norm():
  rng = np.random.default_rng(0)
  base = rng.normal(size=(3, 16))
  vectors = np.concatenate([base, base[:1], 1.01 * base[1:2], np.zeros((1, 16))])
  rows = projected_rows(vectors, d_model=64, init_std=0.02, seed=0)
  norms = np.linalg.norm(rows, axis=1)
  np.testing.assert_allclose(norms[:5], 0.02 * np.sqrt(64), rtol=1e-5)
  assert norms[5] == 0                                       # a code with no meaning stays zero
  np.testing.assert_allclose(rows[3], rows[0], rtol=1e-6)    # same drawing, same row
  np.testing.assert_allclose(rows[4], rows[1], rtol=1e-5)    # scale does not matter
  np.testing.assert_array_equal(rows, projected_rows(vectors, 64, 0.02, 0))   # seeded


def test_init_image_codes_sets_only_image_rows(tiny_overrides):
  cfg = load_config("shapes_tiny", tiny_overrides)
  mc = ModelConfig.from_config(cfg.model)
  params = nnx.to_pure_dict(nnx.state(Decoder(mc, rngs=nnx.Rngs(0))))
  v = mc.vocab
  vectors = np.random.default_rng(1).normal(size=(v.image_size, 8)).astype(np.float32)
  out = init_image_codes(params, vectors, mc, seed=0)
  rows = projected_rows(vectors, mc.d_model, mc.init_std, 0)
  table = np.asarray(out["embed"]["embedding"])
  np.testing.assert_allclose(table[v.image_offset:], rows, rtol=1e-6)
  np.testing.assert_array_equal(table[:v.image_offset],
                                np.asarray(params["embed"]["embedding"])[:v.image_offset])
  np.testing.assert_allclose(np.asarray(out["image_head"]["kernel"]), rows.T, rtol=1e-6)
  # the result loads into a decoder
  model = Decoder(mc, rngs=nnx.Rngs(0))
  nnx.update(model, out)
  with pytest.raises(UserError, match="codebook must match"):
    init_image_codes(params, vectors[:-1], mc, seed=0)


def test_code_features_one_centred_vector_per_code():
  cfg = load_config("shapes_tiny", [
      "--config.data.image_size=32", "--config.tokenizer.d_model=32",
      "--config.tokenizer.n_layers=1", "--config.tokenizer.decoder_layers=1",
      "--config.tokenizer.dtype='float32'", "--config.teacher.d_model=32",
      "--config.teacher.n_layers=1", "--config.teacher.n_heads=2", "--config.teacher.d_ff=64",
      "--config.teacher.text_layers=1", "--config.teacher.dtype='float32'"])
  vt = VisualTokenizer(tokenizer_fn(cfg)(nnx.Rngs(0)))
  teacher = teacher_fn(cfg)(nnx.Rngs(0))
  vectors = code_features(vt, teacher)
  assert vectors.shape[0] == vt.codebook_size and vectors.dtype == np.float32
  np.testing.assert_allclose(vectors.mean(axis=0), 0, atol=1e-5)
  assert np.linalg.norm(vectors, axis=1).min() > 0         # distinct codes draw distinct things
  np.testing.assert_allclose(vectors[:3], code_features(vt, teacher)[:3], rtol=1e-5)
