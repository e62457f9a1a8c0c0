"""A fresh tokenizer must already spread its codes: FSQ rounds tanh(z), so if z starts near zero
every patch gets the same few levels, the decoder sees no signal in the codes, and training
(especially with the semantic losses pulling on the shared encoder) settles on few codes."""
import numpy as np
from flax import nnx

from arm_jax.config import load_config
from arm_jax.tokenizer import data as data_lib
from arm_jax.tokenizer.train_tokenizer import tokenizer_fn


def test_fresh_tokenizer_codes_span_the_fsq_levels(tiny_tok):
  cfg = load_config("shapes_tiny", tiny_tok + ["--config.tokenizer.fsq_levels=(8,6,5)"])
  model = tokenizer_fn(cfg)(nnx.Rngs(0))
  images = data_lib.heldout_images(cfg, 32, seed=0)
  z_q, codes, _ = model.quantize(images)
  levels = np.asarray(cfg.tokenizer.fsq_levels)
  # z_q holds each channel's level value (straight-through rounding leaves float noise ~1e-7).
  used = [len(np.unique(np.round(np.asarray(z_q)[..., c], 4))) for c in range(len(levels))]
  # Each channel reaches at least half its levels on 32 scenes (a 0.02-std init reaches ~2).
  assert all(u >= l / 2 for u, l in zip(used, levels)), (used, levels.tolist())
  assert len(np.unique(np.asarray(codes))) >= 20
