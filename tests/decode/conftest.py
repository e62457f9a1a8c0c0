"""A tiny f32 decoder and its run config, shared by the decoding tests (built once per module)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arm_jax.config import load_config
from arm_jax.model.transformer import Decoder, ModelConfig

TINY = ["--config.model.d_model=64", "--config.model.n_layers=2", "--config.model.n_heads=4",
        "--config.model.n_kv_heads=2", "--config.model.head_dim=16", "--config.model.d_ff=128",
        "--config.model.dtype='float32'", "--config.decode.cache_dtype='float32'",
        "--config.model.max_seq_len=96", "--config.decode.length_buckets=(16,32)",
        "--config.decode.batch_buckets=(1,4,8)", "--config.model.max_grid=4",
        "--config.model.text_vocab_size=64", "--config.model.image_vocab_size=1000"]


class Tiny:
  def __init__(self, extra=()):
    self.config = load_config("shapes_tiny", TINY + list(extra))
    self.mc = ModelConfig.from_config(self.config.model)
    self.vocab = self.mc.vocab
    self.model = Decoder(self.mc, rngs=nnx.Rngs(0))
    self.graphdef, state = nnx.split(self.model)
    self.params = nnx.to_pure_dict(state)
    self._forward = None

  def last_logits(self, seq, params=None):
    """Reference: the plain full-sequence forward (no cache) over `seq`, logits [V] of its last
    position. Right-padded to a fixed 64 so one compilation serves every length (causal)."""
    if self._forward is None:
      self._forward = jax.jit(lambda p, t: nnx.merge(self.graphdef, p)(t).astype(jnp.float32))
    tokens = np.zeros((1, 64), np.int32)
    tokens[0, :len(seq)] = seq
    params = self.params if params is None else params
    return self._forward(params, tokens)[0, len(seq) - 1]


@pytest.fixture(scope="module")
def tiny():
  return Tiny()
