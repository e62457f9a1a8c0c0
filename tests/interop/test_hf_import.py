"""HF -> arm_jax: logits match transformers on text; new vocabulary rows; clear refusals."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny_hf  # noqa: E402
from flax import nnx  # noqa: E402

from arm_jax.config import ConfigError  # noqa: E402
from arm_jax.interop.hf_config import HFConfigError  # noqa: E402
from arm_jax.interop.hf_import import import_params  # noqa: E402
from arm_jax.interop.safetensors_io import (CheckpointFormatError,  # noqa: E402
                                            MissingTensorError, TensorIndex, write_file,
                                            TensorSpec)
from arm_jax.model.transformer import Decoder, ModelConfig  # noqa: E402

# f32 on both sides; the gap is accumulation order (XLA vs torch), measured ~3e-8 on |logits|~0.1.
ATOL = 1e-5


def _decoder(cfg, params):
  abstract = nnx.eval_shape(lambda: Decoder(ModelConfig.from_config(cfg.model), rngs=nnx.Rngs(0)))
  return nnx.merge(nnx.graphdef(abstract), params)


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
  model = tiny_hf.hf_model("qwen2")
  path = tiny_hf.save(model, str(tmp_path_factory.mktemp("qwen")), shard=True)
  return model, path


def test_sharded_qwen_checkpoint_logits_match_transformers(qwen_dir):
  model, path = qwen_dir
  assert os.path.isfile(os.path.join(path, "model.safetensors.index.json"))
  cfg = tiny_hf.config("--config.mesh.shape=(2,2,2)")
  params = import_params(path, cfg)
  q = params["blocks"]["attn"]["q_proj"]["kernel"]
  assert len(q.sharding.device_set) == 8 and not q.sharding.is_fully_replicated
  tokens = np.random.default_rng(0).integers(0, tiny_hf.TEXT_VOCAB, (2, 12))
  ours = np.asarray(_decoder(cfg, params)(jnp.asarray(tokens)))
  ref = tiny_hf.torch_logits(model, tokens)
  np.testing.assert_allclose(ours[..., :tiny_hf.TEXT_VOCAB], ref, atol=ATOL, rtol=0)


def test_llama_tied_bf16_checkpoint_logits_match(tmp_path):
  model = tiny_hf.hf_model("llama", tie=True, rope_theta=5000.0)
  path = tiny_hf.save(model, str(tmp_path), dtype=torch.bfloat16)
  # The reference computes in f32 from the stored bf16 weights (as the import does).
  model = tiny_hf.load(path)
  cfg = tiny_hf.config(qkv_bias=False, tie_embeddings=True, rope_theta=5000.0)
  params = import_params(path, cfg)
  assert "text_head" not in params and params["embed"]["embedding"].dtype == jnp.float32
  tokens = np.random.default_rng(1).integers(0, tiny_hf.TEXT_VOCAB, (2, 10))
  ours = np.asarray(_decoder(cfg, params)(jnp.asarray(tokens)))
  np.testing.assert_allclose(ours[..., :tiny_hf.TEXT_VOCAB], tiny_hf.torch_logits(model, tokens),
                             atol=ATOL, rtol=0)


def test_new_rows_are_mean_plus_seeded_noise_on_any_mesh(qwen_dir):
  model, path = qwen_dir
  cfg = tiny_hf.config()
  one = jax.tree.map(np.asarray, import_params(path, cfg))
  sharded = import_params(path, tiny_hf.config("--config.mesh.shape=(1,4,2)"))
  eight = jax.tree.map(np.asarray, sharded)
  jax.tree.map(np.testing.assert_array_equal, one, eight)
  table = model.model.embed_tokens.weight.detach().numpy()
  v = ModelConfig.from_config(cfg.model).vocab
  embed = one["embed"]["embedding"]
  np.testing.assert_array_equal(embed[:v.text_size], table)
  new = embed[v.text_size:]
  assert new.shape == (v.total_size - v.text_size, 64)
  noise = new - table.mean(0)
  row_std = np.sqrt(table.var(0).mean())   # std within columns, as the importer measures it
  np.testing.assert_allclose(noise.std(), 0.1 * row_std, rtol=0.15)
  assert np.abs(noise.mean(0)).max() < 0.1 * row_std   # centred on the mean row
  head = model.lm_head.weight.detach().numpy()
  image_rows = one["image_head"]["kernel"].T
  assert np.abs(image_rows.mean(0) - head.mean(0)).max() < 0.1 * row_std
  reseeded = import_params(path, tiny_hf.config("--config.interop.init_seed=1"))
  assert not np.array_equal(np.asarray(reseeded["image_head"]["kernel"]), image_rows.T)


def test_recipe_mismatch_names_the_key(qwen_dir):
  _, path = qwen_dir
  with pytest.raises(ConfigError, match=r"model\.d_ff=128 \(intermediate_size\).*256"):
    import_params(path, tiny_hf.config(d_ff=256))
  with pytest.raises(ConfigError, match=r"model\.qkv_bias=True"):
    import_params(path, tiny_hf.config(qkv_bias=False))


def test_unsupported_rope_scaling_is_refused(tmp_path):
  path = tiny_hf.save(tiny_hf.hf_model("llama"), str(tmp_path))
  tiny_hf.edit_config_json(path, rope_parameters={"rope_type": "llama3", "rope_theta": 1e4,
                                                  "factor": 8.0})
  with pytest.raises(HFConfigError, match="rope_type 'llama3'"):
    import_params(path, tiny_hf.config(qkv_bias=False))


def _rewrite_without(path: str, drop: str, reshape: str = "") -> None:
  """Rewrites the single-file checkpoint without tensor `drop` / with `reshape` truncated."""
  file = os.path.join(path, "model.safetensors")
  index = TensorIndex.open(path)
  specs = []
  for name in index.names():
    if name == drop:
      continue
    x = index.read(name)
    if name == reshape:
      x = x[:-1]
    specs.append(TensorSpec(name, x.shape, x.dtype, lambda x=x: [x]))
  write_file(file, specs, {"format": "pt"})


def test_missing_or_misshapen_tensor_is_named(tmp_path):
  model = tiny_hf.hf_model("qwen2")
  missing = tiny_hf.save(model, str(tmp_path / "missing"))
  _rewrite_without(missing, "model.layers.1.mlp.up_proj.weight")
  with pytest.raises(MissingTensorError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
    import_params(missing, tiny_hf.config())
  bad = tiny_hf.save(model, str(tmp_path / "bad"))
  _rewrite_without(bad, "", reshape="model.layers.0.self_attn.k_proj.bias")
  with pytest.raises(CheckpointFormatError,
                     match=r"model\.layers\.0\.self_attn\.k_proj\.bias .*\(31,\).*\(32,\)"):
    import_params(bad, tiny_hf.config())


def test_a_decoder_leaf_without_a_checkpoint_name_is_named(qwen_dir, monkeypatch):
  import jax
  from arm_jax.interop import hf_import
  real = hf_import.weights.abstract_params
  monkeypatch.setattr(hf_import.weights, "abstract_params", lambda config: dict(
      real(config), gate={"scale": jax.ShapeDtypeStruct((4,), np.float32)}))
  with pytest.raises(RuntimeError, match=r"gate\.scale has no Hugging Face counterpart"):
    import_params(qwen_dir[1], tiny_hf.config())
