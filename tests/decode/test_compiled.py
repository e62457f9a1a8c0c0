"""The compiled sampler: static buckets (counted compilations), sharding, chunking, cache limits."""
import jax
import numpy as np
import pytest

from arm_jax import sharding as shd
from arm_jax.decode import constraints as cons
from arm_jax.decode.compiled import CompiledSampler, PromptTooLongError, length_buckets

MAX_NEW = 5   # a 2x2 image after a prompt ending in <boi> <h_2> <w_2>: 4 codes + <eoi>


def _rows(tiny, lengths, seed=0):
  v = tiny.vocab
  rng = np.random.default_rng(seed)
  head = [v.boi, v.height_token(2), v.width_token(2)]
  return [[v.bos] + list(rng.integers(0, v.text_size, n - 4)) + head for n in lengths]


def _run(cs, rows, seed=0, **kw):
  n = len(rows)
  keys = jax.random.split(jax.random.key(seed), n)
  return cs(rows, cons.image_rows(n, 2, 2, header_in_prompt=True), keys, max_new=MAX_NEW,
            temperature=1.0, **kw)


@pytest.fixture(scope="module")
def one_device(tiny):
  return CompiledSampler(tiny.graphdef, tiny.params, tiny.config)   # mesh.shape (1, 1, 1)


def test_length_buckets_are_capped_by_the_cache():
  assert length_buckets((16, 32, 256), cache=96, max_new=17) == [16, 32, 79]
  assert length_buckets((64,), cache=40, max_new=17) == [23]


def test_new_prompt_length_in_the_bucket_does_not_recompile(tiny, one_device):
  # tiny's buckets: lengths (16, 32, then the cache cap), batches (8,)
  _run(one_device, _rows(tiny, [6, 9, 11, 5, 7, 8, 6, 10]))
  n = one_device.compilations()
  _run(one_device, _rows(tiny, [12, 16, 7, 5, 9, 13, 6, 14], seed=1))   # other lengths, <= 16
  _run(one_device, _rows(tiny, [5, 4, 7], seed=2))                      # fewer rows, still 8
  assert one_device.compilations() == n
  _run(one_device, _rows(tiny, [20, 5, 5, 5], seed=3))                  # length bucket 32
  assert one_device.compilations() == n + 2, "a new length bucket compiles prefill + decode"
  _run(one_device, _rows(tiny, [30, 5, 17, 9, 6], seed=4))
  assert one_device.compilations() == n + 2


def test_batch_larger_than_the_biggest_bucket_runs_in_chunks(tiny, one_device):
  rows = _rows(tiny, [6, 9, 11, 5, 7, 8, 6, 10] * 2)
  keys = jax.random.split(jax.random.key(4), 16)
  con = cons.image_rows(16, 2, 2, header_in_prompt=True)
  both = one_device(rows, con, keys, max_new=MAX_NEW, temperature=1.0)
  second = one_device(rows[8:], cons.image_rows(8, 2, 2, header_in_prompt=True), keys[8:],
                      max_new=MAX_NEW, temperature=1.0)
  assert both.tokens.shape == (16, MAX_NEW)
  np.testing.assert_array_equal(both.tokens[8:], second.tokens)
  assert both.image[:, :4].all() and not both.image[:, 4].any()


def test_sharded_batch_matches_one_device(tiny, one_device):
  mesh_cfg = tiny.config.mesh.copy_and_resolve_references()
  mesh_cfg.shape = (-1, 1, 1)
  mesh = shd.make_mesh(mesh_cfg)   # all 8 fake devices
  sharded = CompiledSampler(tiny.graphdef, tiny.params, tiny.config, mesh=mesh)
  assert sharded.mesh.shape["data"] == 8
  rows = _rows(tiny, [6, 9, 11, 5, 7, 8, 6, 10])
  a = _run(sharded, rows)
  b = _run(one_device, rows)
  np.testing.assert_array_equal(a.tokens, b.tokens)
  np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-4)


def test_prompt_longer_than_the_cache_is_a_clear_error(tiny, one_device):
  # model.max_seq_len = 96: a 95-token prompt leaves no room for 5 new tokens
  with pytest.raises(PromptTooLongError, match=r"95 tokens.*model.max_seq_len=96.*room for 91"):
    _run(one_device, _rows(tiny, [95]))
