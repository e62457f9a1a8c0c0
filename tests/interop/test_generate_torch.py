"""examples/generate_torch.py: exported LM + exported pixel decoder + prompt -> PNG, PyTorch only;
its greedy guided codes equal the same decode computed with the JAX model."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

import tiny_hf  # noqa: E402

from arm_jax.interop.decoder_export import export_pixel_decoder  # noqa: E402
from arm_jax.interop.hf_export import export_params  # noqa: E402
from arm_jax.model.transformer import Decoder, ModelConfig  # noqa: E402
from arm_jax.tokenizer.train_tokenizer import tokenizer_fn  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "generate_torch.py")
TOKENIZER = ["--config.tokenizer.fsq_levels=(5,4,3)", "--config.tokenizer.d_model=32",
             "--config.tokenizer.n_heads=2", "--config.tokenizer.d_ff=64",
             "--config.tokenizer.decoder_layers=1", "--config.tokenizer.n_layers=1"]
SCALE = 1.5


def _jax_greedy_codes(model, vocab, caption_ids, grid):
  """Reference: full forward each step, guided = u + s * (f - u) over the image codes."""
  head = [vocab.boi, vocab.height_token(grid), vocab.width_token(grid)]
  cond = [vocab.bos] + caption_ids + head
  uncond = [vocab.bos, vocab.uncond] + head
  n = vocab.codebook_size
  codes = []
  for cell in range(grid * grid):
    lo, _ = vocab.cell_ids(cell)
    f = np.asarray(model(jnp.asarray([cond])))[0, -1, lo:lo + n]
    u = np.asarray(model(jnp.asarray([uncond])))[0, -1, lo:lo + n]
    code = int(np.argmax(u + SCALE * (f - u)))
    codes.append(code)
    cond, uncond = cond + [lo + code], uncond + [lo + code]
  return np.asarray(codes).reshape(grid, grid)


@pytest.mark.parametrize("cells", [False, True])
def test_example_writes_png_without_jax_and_matches_jax_decode(tmp_path, cells):
  cfg = tiny_hf.config(*TOKENIZER, image_vocab_size=60, cell_addressed_codes=cells)
  model = Decoder(ModelConfig.from_config(cfg.model), rngs=nnx.Rngs(0))
  params = nnx.to_pure_dict(nnx.state(model))
  tok_dir, out = tmp_path / "tok", tmp_path / "export"
  tok_dir.mkdir()
  tiny_hf.write_tokenizer(str(tok_dir))
  export_params(params, cfg, str(out), str(tok_dir / "tokenizer.json"))
  tokenizer_params = nnx.to_pure_dict(nnx.state(tokenizer_fn(cfg)(nnx.Rngs(1))))
  export_pixel_decoder(tokenizer_params, cfg, str(out))

  png, codes = tmp_path / "out.png", tmp_path / "codes.npy"
  argv = [SCRIPT, str(out), "w3 w1 w4", str(png), "--temperature", "0",
          "--cfg-scale", str(SCALE), "--save-codes", str(codes)]
  # jax is made unimportable in the child: the example must run on PyTorch alone.
  code = ("import runpy, sys; sys.modules['jax'] = None; sys.argv = " + repr(argv) +
          "; runpy.run_path(sys.argv[0], run_name='__main__')")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  from PIL import Image
  assert Image.open(png).size == (32, 32)

  ids = tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json")).encode(
      "w3 w1 w4", add_special_tokens=False).ids
  assert ids == [3, 1, 4]
  vocab = ModelConfig.from_config(cfg.model).vocab
  np.testing.assert_array_equal(np.load(codes), _jax_greedy_codes(model, vocab, ids, 4))
