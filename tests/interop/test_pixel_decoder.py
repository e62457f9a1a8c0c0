"""The exported PyTorch pixel decoder reproduces the JAX tokenizer's decoder (FSQ and VQ)."""
import importlib.util

import jax
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")

from arm_jax.config import load_config  # noqa: E402
from arm_jax.interop.decoder_export import export_pixel_decoder  # noqa: E402
from arm_jax.tokenizer.api import VisualTokenizer  # noqa: E402
from arm_jax.tokenizer.train_tokenizer import tokenizer_fn  # noqa: E402

SMALL = ["--config.data.image_size=32", "--config.tokenizer.patch_size=8",
         "--config.tokenizer.d_model=32", "--config.tokenizer.n_heads=2",
         "--config.tokenizer.d_ff=64", "--config.tokenizer.decoder_layers=2",
         "--config.tokenizer.n_layers=1", "--config.model.max_grid=4"]
QUANTIZERS = {"fsq": ["--config.tokenizer.fsq_levels=(5,4,3)",
                      "--config.model.image_vocab_size=60"],
              "vq": ["--config.tokenizer.quantizer=vq", "--config.tokenizer.vq_codebook_size=50",
                     "--config.tokenizer.vq_dim=6", "--config.model.image_vocab_size=50"]}


def _torch_decoder(out_dir):
  spec = importlib.util.spec_from_file_location("exported_pixel_decoder",
                                                f"{out_dir}/pixel_decoder.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.PixelDecoder.from_pretrained(str(out_dir))


@pytest.mark.parametrize("quantizer", sorted(QUANTIZERS))
def test_torch_decoder_reproduces_jax_pixels(tmp_path, quantizer):
  cfg = load_config("shapes_tiny", SMALL + QUANTIZERS[quantizer])
  model = tokenizer_fn(cfg)(nnx.Rngs(0))
  params = nnx.to_pure_dict(nnx.state(model))
  # Move every weight off its init (LayerNorms at 1/0 would hide a scale/bias mix-up).
  keys = iter(jax.random.split(jax.random.key(1), 256))
  params = jax.tree.map(lambda x: x + 0.2 * jax.random.normal(next(keys), x.shape), params)
  nnx.update(model, params)
  export_pixel_decoder(params, cfg, str(tmp_path))
  dec = _torch_decoder(tmp_path)
  vt = VisualTokenizer(model, chunk=4)
  codes = np.random.default_rng(0).integers(0, vt.codebook_size, (3, vt.grid, vt.grid))
  flat = jax.numpy.asarray(codes.reshape(3, -1), jax.numpy.int32)
  want_float = np.asarray(model.decode_codes(model.codes_to_vectors(flat)))
  got_float = dec.decode_float(torch.tensor(codes)).detach().numpy()
  np.testing.assert_allclose(got_float, want_float, atol=2e-5, rtol=0)
  want, got = vt.decode(codes), dec(torch.tensor(codes)).numpy()
  assert got.dtype == np.uint8 and got.shape == want.shape == (3, 32, 32, 3)
  # Identical pixels, except where the float sits on a rounding boundary (a 1-level step).
  assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
  assert (got == want).mean() > 0.999
  with pytest.raises(ValueError, match="must lie in"):
    dec(torch.full((1, vt.grid, vt.grid), vt.codebook_size))
