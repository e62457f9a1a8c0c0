"""The core sampler against the plain full-sequence forward, and its sampling knobs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arm_jax.decode import constraints as cons
from arm_jax.decode import sampler
from arm_jax.decode.compiled import left_pad
from arm_jax.decode.guidance import guide
from arm_jax.errors import UserError


def _left_pad(rows, pad):
  return left_pad(rows, max(len(r) for r in rows), pad)


# One jit for every test here: same shapes (3 samples, prompts padded to 7, 10 new tokens), and
# knobs/keys/constraints are traced, so only the guidance kind compiles anew.
_SAMPLE = jax.jit(sampler.sample, static_argnames=("graphdef", "max_new", "guidance",
                                                     "cache_len", "cache_dtype"))
MAX_NEW = 10
PROMPTS = [[1, 5, 9, 2, 33], [7, 3], [4, 4, 8, 60, 12, 2, 1]]   # ragged: left padding is used


def _sample(tiny, rows, constraint, guidance="none", rng=None, **kn):
  prompt, mask = _left_pad(rows, tiny.vocab.pad)
  rng = jax.random.split(jax.random.key(0), 3) if rng is None else rng
  out = _SAMPLE(tiny.params, tiny.graphdef, prompt, mask, rng, max_new=MAX_NEW,
                constraint=constraint, kn=sampler.knobs(3, **kn), guidance=guidance,
                cache_dtype=jnp.float32)
  return jax.tree.map(np.asarray, out)


def test_cached_greedy_decode_reproduces_full_forward(tiny):
  """Each drawn token is the argmax of the full forward's allowed logits over prompt+drawn so
  far, and its returned log-prob is that forward's log-softmax: several steps, text and image."""
  v = tiny.vocab
  con = cons.concat([cons.text_rows(1), cons.image_rows(2, 2, 2)])
  max_new = MAX_NEW
  out = _sample(tiny, PROMPTS, con, temperature=0.0)
  for row, prompt in enumerate(PROMPTS):
    c = cons.Constraint(*(np.asarray(f)[row:row + 1] for f in con))
    seq = list(prompt)
    for t in range(max_new):
      if not out.valid[row, t]:
        break
      logits = tiny.last_logits(seq)
      allowed = np.asarray(cons.allowed(v, c, logits.shape[-1]))[0]
      expect = int(np.argmax(np.where(allowed, logits, -np.inf)))
      assert out.tokens[row, t] == expect, (row, t)
      np.testing.assert_allclose(out.logprobs[row, t], jax.nn.log_softmax(logits)[expect],
                                 atol=1e-4)
      c = cons.advance(v, c, jnp.asarray([expect]))
      seq.append(expect)
  # image rows: <boi> <h> <w>, 2*2 codes, <eoi> = 8 tokens, then stopped
  assert out.valid[1:, :8].all() and not out.valid[1:, 8:].any()
  assert out.valid[0].sum() > 2, "the text row should draw several tokens before any <eos>"


def test_image_rows_follow_the_grammar(tiny):
  v = tiny.vocab
  out = _sample(tiny, PROMPTS, cons.image_rows(3, 2, 3), temperature=1.0)
  for row in range(3):
    n = out.valid[row].sum()
    toks = out.tokens[row, :n]
    assert n == 2 * 3 + 4
    assert list(toks[:3]) == [v.boi, v.height_token(2), v.width_token(3)]
    assert toks[-1] == v.eoi and v.is_image(toks[3:-1]).all()
    np.testing.assert_array_equal(out.image[row, :n], v.is_image(toks))
    assert (out.tokens[row, n:] == v.pad).all() and (out.logprobs[row, n:] == 0).all()


def _check_grammar(v, tokens, valid):
  """Walks one row: text outside images, exactly <boi> <h> <w> H*W codes <eoi> inside (the
  last image may be cut short by max_new). Returns how many images were opened."""
  toks = [int(t) for t, ok in zip(tokens, valid) if ok]
  i, images = 0, 0
  while i < len(toks):
    t = toks[i]
    assert not v.is_image(t), f"image code {t} outside an image at {i}"
    if t != v.boi:
      assert t < v.text_size or t == v.eos, f"non-text token {t} in text at {i}"
      i += 1
      continue
    images += 1
    head = toks[i + 1:i + 3]
    h, w = v.grid_from_tokens(*head) if len(head) == 2 else (0, 0)
    assert len(head) < 2 or (1 <= h <= v.max_grid and 1 <= w <= v.max_grid), head
    body = toks[i + 3:i + 3 + h * w]
    assert all(v.is_image(t) for t in body), f"non-image token inside an image: {body}"
    i += 3 + h * w
    if i < len(toks):
      assert toks[i] == v.eoi
      i += 1
  return images


def _scaled(params, head, factor):
  out = jax.tree.map(lambda x: x, params)
  out[head]["kernel"] = params[head]["kernel"] * factor
  return out


@pytest.mark.parametrize("dominant", ["image_head", "text_head"])
def test_grammar_holds_when_the_model_prefers_the_wrong_tokens(tiny, dominant):
  """With one head's logits blown up, unmasked sampling would emit image codes in text (or
  text inside images); the grammar mask must still keep every row well-formed."""
  v = tiny.vocab
  params = _scaled(tiny.params, dominant, 1000.0)
  con = cons.concat([cons.text_rows(1, allow_image=True), cons.image_rows(1, 2, 2),
                     cons.image_rows(1, 0, 0)])   # the last row's grid is the model's choice
  prompt, mask = _left_pad(PROMPTS, v.pad)
  out = jax.tree.map(np.asarray, _SAMPLE(
      params, tiny.graphdef, prompt, mask, jax.random.split(jax.random.key(5), 3),
      max_new=MAX_NEW, constraint=con, kn=sampler.knobs(3, temperature=1.0),
      cache_dtype=jnp.float32))
  for row in range(3):
    _check_grammar(v, out.tokens[row], out.valid[row])
    np.testing.assert_array_equal(out.image[row] & out.valid[row],
                                  v.is_image(out.tokens[row]) & out.valid[row])
  assert _check_grammar(v, out.tokens[1], out.valid[1]) == 1 and out.valid[1].sum() == 8
  # The test has teeth: unmasked, this model would pick the wrong kind of token.
  unmasked = int(np.argmax(tiny.last_logits(PROMPTS[0] + [v.boi], params)))
  assert bool(v.is_image(unmasked)) == (dominant == "image_head")


def test_top_k_1_equals_greedy(tiny):
  con = cons.image_rows(3, 2, 2)
  greedy = _sample(tiny, PROMPTS, con, temperature=0.0)
  top1 = _sample(tiny, PROMPTS, con, temperature=1.3, top_k=1)
  free = _sample(tiny, PROMPTS, con, temperature=1.3)
  np.testing.assert_array_equal(top1.tokens, greedy.tokens)
  assert (free.tokens != greedy.tokens).any(), "sampling at T=1.3 should differ from greedy"


def test_cfg_scale_1_equals_conditional_only(tiny):
  v = tiny.vocab
  cond = PROMPTS
  uncond = [[v.bos, v.uncond]] * 3   # shorter than the conditional rows: padded more
  con = cons.image_rows(3, 2, 2)
  plain = _sample(tiny, cond, con, temperature=1.0)
  guided = _sample(tiny, cond + uncond, con, guidance="t2i", temperature=1.0, text_scale=1.0)
  strong = _sample(tiny, cond + uncond, con, guidance="t2i", temperature=1.0, text_scale=8.0)
  np.testing.assert_array_equal(guided.tokens, plain.tokens)
  np.testing.assert_allclose(guided.logprobs, plain.logprobs, atol=1e-5)
  assert (strong.tokens != plain.tokens).any(), "scale 8 should change the samples"


def test_dual_guidance_formula():
  f, i, u = jnp.array([[2.0, 0.5]]), jnp.array([[1.0, 1.5]]), jnp.array([[0.0, 1.0]])
  out = guide(jnp.stack([f, i, u]), "edit", jnp.array([1.5, 1.25]))
  # u + s_img * (i - u) + s_txt * (f - i)
  np.testing.assert_allclose(out, u + 1.25 * (i - u) + 1.5 * (f - i), rtol=1e-6)
  np.testing.assert_array_equal(guide(jnp.stack([f, i, u]), "edit", jnp.array([1.0, 1.0])), f)
  np.testing.assert_allclose(guide(jnp.stack([f, u]), "t2i", jnp.array([3.0, 9.0])),
                             u + 3.0 * (f - u), rtol=1e-6)


def test_row_samples_do_not_depend_on_batch_mates(tiny):
  """A sample is a function of its prompt and key only: reordering the batch reorders it."""
  keys = jax.random.split(jax.random.key(3), 3)
  con = cons.image_rows(3, 2, 2)
  order = [2, 0, 1]
  together = _sample(tiny, PROMPTS, con, rng=keys, temperature=1.0)
  shuffled = _sample(tiny, [PROMPTS[i] for i in order], con, rng=keys[np.array(order)],
                     temperature=1.0)
  np.testing.assert_array_equal(shuffled.tokens, together.tokens[order])


def test_prompt_longer_than_cache_is_a_clear_error(tiny):
  prompt, mask = _left_pad([list(range(1, 40))], tiny.vocab.pad)
  with pytest.raises(UserError, match="does not fit the KV cache of 32"):
    from flax import nnx
    sampler.prefill(nnx.merge(tiny.graphdef, tiny.params), prompt, mask, jax.random.key(0),
                    cons.text_rows(1), sampler.knobs(1), max_new=8, cache_len=32)


def test_cell_addressed_image_draws_each_cell_from_its_own_ids():
  from arm_jax.model.vocab import VocabLayout
  v = VocabLayout(text_size=10, max_grid=2, codebook_size=3, cell_addressed=True)
  c = cons.image_rows(1, 2, 2, header_in_prompt=True)
  drawn = []
  for cell in range(4):
    ids = np.nonzero(np.asarray(cons.allowed(v, c, v.total_size))[0])[0]
    np.testing.assert_array_equal(ids, v.image_offset + 3 * cell + np.arange(3))
    drawn.append(int(ids[-1]))
    c = cons.advance(v, c, jnp.asarray([drawn[-1]]))
  assert int(c.phase[0]) == cons.EOI
  np.testing.assert_array_equal(v.ids_to_codes(np.array(drawn)), [2, 2, 2, 2])
