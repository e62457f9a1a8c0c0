"""Image-code (and text) rows seeded from per-token vectors (model.image_embed_init)."""
import numpy as np
import pytest
from flax import nnx

from arm_jax.config import load_config
from arm_jax.errors import UserError
from arm_jax.model.code_init import init_image_codes, init_joint, projected_rows
from arm_jax.model.transformer import Decoder, ModelConfig
from arm_jax.tokenizer.api import VisualTokenizer
from arm_jax.tokenizer.code_semantics import code_features, joint_vectors
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


def test_init_joint_puts_text_and_codes_through_one_projection(tiny_overrides):
  cfg = load_config("shapes_tiny", tiny_overrides)
  mc = ModelConfig.from_config(cfg.model)
  params = nnx.to_pure_dict(nnx.state(Decoder(mc, rngs=nnx.Rngs(0))))
  v = mc.vocab
  rng = np.random.default_rng(1)
  codes = rng.normal(size=(v.image_size, 8)).astype(np.float32)
  tokens = rng.normal(size=(v.text_size, 8)).astype(np.float32)
  tokens[5] = 2.0 * codes[7]          # a word that means what code 7 draws
  out = init_joint(params, codes, tokens, mc, seed=0)
  table = np.asarray(out["embed"]["embedding"])
  np.testing.assert_allclose(table[5], table[v.image_offset + 7], rtol=1e-5)
  # the code rows are what init_image_codes gives: one projection, rows normalised one by one
  np.testing.assert_allclose(table[v.image_offset:], np.asarray(
      init_image_codes(params, codes, mc, 0)["embed"]["embedding"])[v.image_offset:], rtol=1e-5)
  np.testing.assert_allclose(np.asarray(out["image_head"]["kernel"]), table[v.image_offset:].T,
                             rtol=1e-6)
  # specials (between the text and the image rows) keep their fresh init
  np.testing.assert_array_equal(table[v.text_size:v.image_offset],
                                np.asarray(params["embed"]["embedding"])[v.text_size:v.image_offset])
  with pytest.raises(UserError, match="text vocabulary"):
    init_joint(params, codes, tokens[:-1], mc, seed=0)


def _tiny_tokenizer_and_teacher():
  cfg = load_config("shapes_tiny", [
      "--config.data.image_size=32", "--config.tokenizer.d_model=32",
      "--config.tokenizer.n_layers=1", "--config.tokenizer.decoder_layers=1",
      "--config.tokenizer.dtype='float32'", "--config.teacher.d_model=32",
      "--config.teacher.n_layers=1", "--config.teacher.n_heads=2", "--config.teacher.d_ff=64",
      "--config.teacher.text_layers=1", "--config.teacher.dtype='float32'"])
  return VisualTokenizer(tokenizer_fn(cfg)(nnx.Rngs(0))), teacher_fn(cfg)(nnx.Rngs(0))


def test_code_features_one_centred_vector_per_code():
  vt, teacher = _tiny_tokenizer_and_teacher()
  vectors = code_features(vt, teacher)
  assert vectors.shape[0] == vt.codebook_size and vectors.dtype == np.float32
  np.testing.assert_allclose(vectors.mean(axis=0), 0, atol=1e-5)
  assert np.linalg.norm(vectors, axis=1).min() > 0         # distinct codes draw distinct things
  np.testing.assert_allclose(vectors[:3], code_features(vt, teacher)[:3], rtol=1e-5)


def test_joint_vectors_read_codes_and_tokens_in_one_space():
  vt, teacher = _tiny_tokenizer_and_teacher()
  codes, tokens = joint_vectors(vt, teacher, text_size=40, eos=41, pad=42)
  assert codes.shape == (vt.codebook_size, teacher.cfg.embed_dim)
  assert tokens.shape == (40, teacher.cfg.embed_dim) and tokens.dtype == np.float32
  np.testing.assert_allclose(codes.mean(axis=0), 0, atol=1e-5)
  np.testing.assert_allclose(tokens.mean(axis=0), 0, atol=1e-5)
  # token t's vector is the text tower on [t, <eos>, <pad>...], before centring
  ids = np.full((2, teacher.cfg.text_len), 42, np.int32)
  ids[:, 0], ids[:, 1] = (3, 9), 41
  raw = np.asarray(teacher.text(ids))
  np.testing.assert_allclose(tokens[3] - tokens[9], raw[0] - raw[1], rtol=1e-4, atol=1e-5)
