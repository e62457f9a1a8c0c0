import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from arm_jax.config import load_config
from arm_jax.model.transformer import Decoder, ModelConfig, init_cache
from arm_jax.model.vocab import VocabLayout
from arm_jax.train.step import lm_loss


def _model(overrides, **extra):
  cfg = load_config("shapes_tiny", overrides + [f"--config.model.{k}={v}" for k, v in extra.items()])
  mc = ModelConfig.from_config(cfg.model)
  return Decoder(mc, rngs=nnx.Rngs(0)), mc


def _cached_forward(model, mc, tokens, prefill):
  b, n = tokens.shape
  cache = init_cache(mc, b, n, jnp.float32)
  slots = jnp.arange(n)
  outs = []
  for lo, hi in [(0, prefill)] + [(i, i + 1) for i in range(prefill, n)]:
    q = jnp.arange(lo, hi)
    mask = (slots[None, :] <= q[:, None])[None, None]
    mask = jnp.broadcast_to(mask, (b, 1, hi - lo, n))
    pos = jnp.broadcast_to(q, (b, hi - lo))
    h, cache = model.hidden(tokens[:, lo:hi], pos, cache, jnp.int32(lo), mask)
    outs.append(model.logits(h))
  return jnp.concatenate(outs, axis=1)


def test_kv_cache_matches_full_forward(tiny_overrides):
  model, mc = _model(tiny_overrides)
  tokens = jax.random.randint(jax.random.key(1), (2, 12), 0, mc.vocab.total_size)
  full = model(tokens)
  cached = _cached_forward(model, mc, tokens, prefill=7)
  np.testing.assert_allclose(np.asarray(cached), np.asarray(full), atol=2e-5, rtol=1e-4)


def test_logit_layout_and_heads(tiny_overrides):
  model, mc = _model(tiny_overrides)
  v = mc.vocab
  logits = model(jnp.zeros((1, 3), jnp.int32))
  assert logits.shape == (1, 3, v.total_size)
  h, _ = model.hidden(jnp.zeros((1, 3), jnp.int32))
  # The image head alone scores exactly the image-code slice of the full logits.
  np.testing.assert_allclose(np.asarray(model.image_logits(h)),
                             np.asarray(logits[..., v.image_offset:]), atol=1e-6)


def test_remat_and_bf16_give_same_loss_shape(tiny_overrides):
  tokens = jnp.arange(16, dtype=jnp.int32).reshape(2, 8)
  base, _ = _model(tiny_overrides)
  remat, _ = _model(tiny_overrides, remat="full")
  np.testing.assert_allclose(np.asarray(base(tokens)), np.asarray(remat(tokens)), atol=1e-5)
  bf16, _ = _model(tiny_overrides, dtype="'bfloat16'")
  out = bf16(tokens)
  assert out.dtype == jnp.bfloat16 and bool(jnp.isfinite(out.astype(jnp.float32)).all())


def test_vocab_layout_roundtrip():
  v = VocabLayout(text_size=100, max_grid=8, codebook_size=50)
  assert v.image_offset == 100 + 7 + 16 and v.total_size == v.image_offset + 50
  ids = v.image_tokens(np.arange(6).reshape(2, 3))
  assert ids[0] == v.boi and ids[-1] == v.eoi
  assert v.grid_from_tokens(ids[1], ids[2]) == (2, 3)
  np.testing.assert_array_equal(v.ids_to_codes(ids[3:-1]), np.arange(6))
  assert bool(v.is_image(ids[3:-1]).all()) and not bool(v.is_image(ids[:3]).any())


def test_codes_out_of_range_is_clear_error():
  v = VocabLayout(text_size=100, max_grid=8, codebook_size=50)
  try:
    v.codes_to_ids(np.array([0, 50]))
  except ValueError as e:
    assert "image_vocab_size" in str(e)
  else:
    raise AssertionError("out-of-range code accepted")


def test_unrolled_layers_equal_the_scanned_stack(tiny_overrides):
  tokens = jnp.arange(16, dtype=jnp.int32).reshape(2, 8)
  scanned, _ = _model(tiny_overrides)
  unrolled, _ = _model(tiny_overrides, scan_layers=False)
  np.testing.assert_allclose(np.asarray(scanned(tokens)), np.asarray(unrolled(tokens)),
                             atol=1e-5)


def test_packed_row_gives_each_segment_its_own_logits(tiny_overrides):
  """Two sequences in one row (segments 1, 2, padding 0) score exactly as each alone."""
  model, mc = _model(tiny_overrides)
  a = jax.random.randint(jax.random.key(1), (1, 5), 0, mc.vocab.total_size)
  b = jax.random.randint(jax.random.key(2), (1, 4), 0, mc.vocab.total_size)
  row = jnp.concatenate([a, b, jnp.zeros((1, 3), jnp.int32)], axis=1)
  segments = jnp.asarray([[1] * 5 + [2] * 4 + [0] * 3], jnp.int32)
  positions = jnp.asarray([list(range(5)) + list(range(4)) + [0] * 3], jnp.int32)
  packed = model(row, positions, segments)
  np.testing.assert_allclose(np.asarray(packed[:, :5]), np.asarray(model(a)), atol=2e-5)
  np.testing.assert_allclose(np.asarray(packed[:, 5:9]), np.asarray(model(b)), atol=2e-5)


def test_cell_addressed_ids_name_their_cell():
  v = VocabLayout(text_size=100, max_grid=2, codebook_size=5, cell_addressed=True)
  assert v.cells == 4 and v.image_size == 20 and v.embed_rows == v.image_offset + 5
  ids = v.image_tokens(np.array([[3, 3], [0, 4]]))[3:-1]
  np.testing.assert_array_equal(ids - v.image_offset, [3, 8, 10, 19])   # cell * 5 + code
  np.testing.assert_array_equal(v.ids_to_codes(ids), [3, 3, 0, 4])
  assert [v.cell_ids(k) for k in (0, 3)] == [(v.image_offset, v.image_offset + 5),
                                            (v.image_offset + 15, v.total_size)]


def test_cell_addressed_decoder_shares_code_rows(tiny_overrides):
  """Embedding of (cell, code) = code row + cell row; logit = code logit + cell logit."""
  model, cfg = _model(tiny_overrides, max_grid=2, cell_addressed_codes=True)
  v = model.cfg.vocab
  assert v.cells == 4
  ids = jnp.asarray(v.image_tokens(np.array([[1, 1], [1, 2]]))[None])
  x = np.asarray(model.embed_tokens(ids))[0]
  code, cell = np.asarray(model.embed.embedding[...]), np.asarray(model.cell_embed.embedding[...])
  np.testing.assert_allclose(x[3], code[v.image_offset + 1] + cell[0], atol=1e-6)
  np.testing.assert_allclose(x[4], code[v.image_offset + 1] + cell[1], atol=1e-6)
  np.testing.assert_allclose(x[:3], code[np.asarray(ids[0, :3])], atol=1e-6)
  h, _ = model.hidden(ids)
  logits = np.asarray(model.logits(h))[0, -1]
  codes = np.asarray(model.image_head(h))[0, -1]
  cells = np.asarray(model.cell_head(h))[0, -1]
  assert logits.shape == (v.total_size,)
  np.testing.assert_allclose(logits[v.image_offset + 2 * v.codebook_size + 7],
                             codes[7] + cells[2], atol=1e-5)


@pytest.mark.parametrize("cells", [False, True])
def test_loss_terms_match_the_full_logits(tiny_overrides, cells):
  """lm_loss scores targets without building the logits; its CE, z and accuracy agree."""
  model, _ = _model(tiny_overrides, max_grid=2, cell_addressed_codes=cells)
  v = model.cfg.vocab
  k1, k2 = jax.random.split(jax.random.key(3))
  inputs = jax.random.randint(k1, (2, 9), 0, v.total_size)
  # Every kind of target: text, specials, the first and last image ids.
  targets = jax.random.randint(k2, (2, 9), 0, v.total_size)
  targets = targets.at[0, :3].set(jnp.array([0, v.image_offset, v.total_size - 1]))
  logits = model(inputs).astype(jnp.float32)
  # Make some targets the argmax so the accuracy term sees hits and misses.
  targets = targets.at[1, :4].set(logits[1, :4].argmax(-1))
  h, _ = model.hidden(inputs)
  target, log_z, top = model.target_scores(h, targets)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  np.testing.assert_allclose(np.asarray(log_z - target), np.asarray(ce), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(log_z), np.asarray(jax.nn.logsumexp(logits, -1)),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(target >= top),
                                np.asarray(logits.argmax(-1) == targets))
  batch = {"inputs": inputs, "targets": targets, "loss_mask": jnp.ones(targets.shape)}
  loss, metrics = lm_loss(model, batch, None)
  np.testing.assert_allclose(float(loss), float(ce.mean()), rtol=1e-5)
  assert float(metrics["accuracy"]) == pytest.approx(float((logits.argmax(-1) == targets).mean()))
