"""arm_jax -> HF: transformers loads the export and its logits match ours on mixed text+image
sequences; HF -> arm_jax -> HF gives back the original tensors bit for bit."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny_hf  # noqa: E402
from flax import nnx  # noqa: E402

from arm_jax.interop.hf_export import export_params  # noqa: E402
from arm_jax.interop.hf_import import import_params  # noqa: E402
from arm_jax.interop.safetensors_io import TensorIndex  # noqa: E402
from arm_jax.model.transformer import Decoder, ModelConfig  # noqa: E402

# f32 both sides; measured ~2e-6 on |logits| ~3 (accumulation order only).
ATOL = 2e-5


def _random_decoder(cfg, seed=0):
  """Random decoder whose norms and biases are off their init (so a mix-up would show)."""
  model = Decoder(ModelConfig.from_config(cfg.model), rngs=nnx.Rngs(seed))
  params = nnx.to_pure_dict(nnx.state(model))
  keys = iter(jax.random.split(jax.random.key(seed + 1), 64))
  params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(next(keys), x.shape), params)
  nnx.update(model, params)
  return model, params


@pytest.mark.parametrize("qkv_bias,tie,cells,arch", [(True, False, False, "Qwen2ForCausalLM"),
                                                     (False, True, False, "LlamaForCausalLM"),
                                                     (True, False, True, "Qwen2ForCausalLM")])
def test_transformers_logits_match_on_mixed_sequences(tmp_path, qkv_bias, tie, cells, arch):
  """cells: a cell-addressed vocabulary, whose shared code and cell rows the export
  materialises into one row per (cell, code) id."""
  cfg = tiny_hf.config("--config.interop.shard_mb=0.05", qkv_bias=qkv_bias, tie_embeddings=tie,
                       rope_theta=5000.0, cell_addressed_codes=cells)
  model, params = _random_decoder(cfg)
  files = export_params(params, cfg, str(tmp_path))
  assert "model.safetensors.index.json" in files      # sharded at 50 KB per file
  hf = tiny_hf.load(str(tmp_path))
  assert type(hf).__name__ == arch
  vocab = ModelConfig.from_config(cfg.model).vocab
  tokens = tiny_hf.mixed_tokens(vocab)
  ours = np.asarray(model(jnp.asarray(tokens)))
  ref = tiny_hf.torch_logits(hf, tokens)
  assert ref.shape == ours.shape == (2, tokens.shape[1], vocab.total_size)
  np.testing.assert_allclose(ref, ours, atol=ATOL, rtol=0)
  layout = json.load(open(tmp_path / "arm_jax_vocab.json"))
  assert layout["image_offset"] == vocab.image_offset
  assert layout["specials"]["<boi>"] == vocab.boi


@pytest.mark.parametrize("kind,dtype,tie", [("qwen2", torch.float32, False),
                                            ("llama", torch.bfloat16, True)])
def test_round_trip_is_bit_identical(tmp_path, kind, dtype, tie):
  src = tiny_hf.save(tiny_hf.hf_model(kind, tie=tie), str(tmp_path / "src"), dtype=dtype)
  export_dtype = "bfloat16" if dtype == torch.bfloat16 else "float32"
  cfg = tiny_hf.config(f"--config.interop.export_dtype={export_dtype}", qkv_bias=kind == "qwen2",
                       tie_embeddings=tie)
  out = str(tmp_path / "out")
  export_params(import_params(src, cfg), cfg, out)
  before, after = TensorIndex.open(src), TensorIndex.open(out)
  assert before.names() and set(before.names()) <= set(after.names())
  for name in before.names():
    a, b = before.read(name), after.read(name)
    assert a.dtype == b.dtype, name
    n = tiny_hf.TEXT_VOCAB if name in ("model.embed_tokens.weight", "lm_head.weight") else None
    np.testing.assert_array_equal(b[:n].view(np.uint16 if a.itemsize == 2 else np.uint32),
                                  a.view(np.uint16 if a.itemsize == 2 else np.uint32), name)
  if tie:   # the untied export's text rows of lm_head are the tied embedding's
    np.testing.assert_array_equal(after.read("lm_head.weight")[:tiny_hf.TEXT_VOCAB],
                                  before.read("model.embed_tokens.weight"))
  assert not os.path.exists(os.path.join(out, "tokenizer.json"))   # none was given
