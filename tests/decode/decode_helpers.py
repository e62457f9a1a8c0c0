"""Shared by the decoding tests: a tiny f32 decoder with its run config, and stand-ins for the
text and visual tokenizers behind their rooms' interfaces."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arm_jax.config import load_config
from arm_jax.model.transformer import Decoder, ModelConfig

TINY = ["--config.model.d_model=64", "--config.model.n_layers=2", "--config.model.n_heads=4",
        "--config.model.n_kv_heads=2", "--config.model.head_dim=16", "--config.model.d_ff=128",
        "--config.model.dtype='float32'", "--config.decode.cache_dtype='float32'",
        "--config.model.max_seq_len=96", "--config.decode.length_buckets=(16,32)",
        "--config.decode.batch_buckets=(8,)", "--config.model.max_grid=4",
        "--config.model.text_vocab_size=64", "--config.model.image_vocab_size=1000",
        "--config.tokenizer.fsq_levels=(8,5,5,5)",
        "--config.data.image_size=64", "--config.tokenizer.patch_size=16",   # 4x4 code grids
        "--config.mesh.shape=(1,1,1)"]   # one device unless a test asks for the 8 fake ones


def random_params(abstract, seed=0):
  """Weights for an abstract param tree, drawn with numpy (instant, unlike compiling the
  model's init): norm scales 1, kernels N(0, 1/fan_in), embeddings N(0, 1), biases N(0, 0.01),
  so the logits are far from uniform and greedy choices are not near-ties."""
  rng = np.random.default_rng(seed)

  def make(path, a):
    name = str(path[-1]).strip("[]'")
    if name == "scale":
      return jnp.ones(a.shape, a.dtype)
    std = {"kernel": a.shape[-2] ** -0.5 if len(a.shape) > 1 else 1.0, "embedding": 1.0}
    return jnp.asarray(std.get(name, 0.1) * rng.standard_normal(a.shape), a.dtype)

  return jax.tree_util.tree_map_with_path(make, abstract)


class Tiny:
  def __init__(self, extra=()):
    self.config = load_config("shapes_tiny", TINY + list(extra))
    self.mc = ModelConfig.from_config(self.config.model)
    self.vocab = self.mc.vocab
    self.graphdef, abstract = nnx.split(nnx.eval_shape(lambda: Decoder(self.mc,
                                                                      rngs=nnx.Rngs(0))))
    self.params = random_params(nnx.to_pure_dict(abstract))
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


class CharTokenizer:
  """Stand-in text tokenizer behind the data room's interface: one id per character."""

  def __init__(self, vocab_size: int):
    self.vocab_size = vocab_size

  def encode(self, text: str) -> list[int]:
    return [ord(c) % self.vocab_size for c in text]

  def decode(self, ids) -> str:
    return "".join(chr(ord("a") + int(i) % 26) for i in ids)


class PatchColorCodec:
  """Stand-in visual tokenizer: each 16x16 patch's quantised mean colour (data/codes.py)."""

  def __init__(self, config):
    from arm_jax.data import codes
    self.patch = config.tokenizer.patch_size
    self.levels = codes.patch_color_levels(config.model.image_vocab_size)
    self._encode = codes.patch_color_encoder(self.patch, self.levels)
    self._decode = lambda c: codes.patch_color_decode(c, self.patch, self.levels)

  def encode(self, images):
    return self._encode(np.asarray(images))

  def decode(self, codes):
    return self._decode(np.asarray(codes))
