"""HF SigLIP weights -> the teacher: logits match transformers' SiglipModel (tiny random config)."""
import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from arm_jax.interop.siglip import SiglipConfigError, import_siglip  # noqa: E402
from arm_jax.interop.safetensors_io import PickleCheckpointError  # noqa: E402
from arm_jax.tokenizer.teacher import Siglip, TeacherConfig  # noqa: E402
from arm_jax.tokenizer.vit import ViTConfig  # noqa: E402

D, LAYERS, HEADS, FF, VOCAB, TEXT_LEN, IMAGE, PATCH = 32, 2, 4, 64, 99, 12, 32, 8


def _teacher_cfg(**changes) -> TeacherConfig:
  vit = ViTConfig(D, LAYERS, HEADS, FF)
  cfg = TeacherConfig(IMAGE, PATCH, vit, dataclasses.replace(vit, n_layers=LAYERS - 1), VOCAB,
                      TEXT_LEN)
  return dataclasses.replace(cfg, **changes)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  torch.manual_seed(0)
  common = dict(hidden_size=D, num_attention_heads=HEADS, intermediate_size=FF)
  config = transformers.SiglipConfig(
      text_config=dict(common, num_hidden_layers=LAYERS - 1, vocab_size=VOCAB,
                       max_position_embeddings=TEXT_LEN),
      vision_config=dict(common, num_hidden_layers=LAYERS, image_size=IMAGE, patch_size=PATCH))
  model = transformers.SiglipModel(config).eval()
  with torch.no_grad():   # random (not the init's zeros/ones) so every tensor matters
    for p in model.parameters():
      p.copy_(torch.randn_like(p) * 0.2)
    model.logit_scale.fill_(2.0)
    model.logit_bias.fill_(-3.0)
  path = tmp_path_factory.mktemp("siglip")
  model.save_pretrained(path, safe_serialization=True)
  return str(path), model


def test_logits_match_transformers(hf_dir):
  path, hf_model = hf_dir
  cfg = _teacher_cfg()
  params = import_siglip(path, cfg)
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: Siglip(cfg, rngs=nnx.Rngs(0))))
  teacher = nnx.merge(graphdef, params)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (3, IMAGE, IMAGE, 3), dtype=np.uint8)
  ids = rng.integers(0, VOCAB, (4, TEXT_LEN))
  pixels = torch.tensor(images.transpose(0, 3, 1, 2) / 127.5 - 1.0, dtype=torch.float32)
  with torch.no_grad():
    out = hf_model(input_ids=torch.tensor(ids), pixel_values=pixels)
  ours = np.asarray(teacher.logits(jnp.asarray(images), jnp.asarray(ids, jnp.int32)))
  np.testing.assert_allclose(ours, out.logits_per_text.numpy(), atol=2e-4, rtol=1e-4)
  # The patch features the tokenizer distils are SigLIP's last_hidden_state.
  with torch.no_grad():
    feats = hf_model.vision_model(pixel_values=pixels).last_hidden_state.numpy()
  np.testing.assert_allclose(np.asarray(teacher.patch_features(jnp.asarray(images))), feats,
                             atol=2e-4, rtol=1e-4)


def test_config_mismatch_names_the_key(hf_dir):
  with pytest.raises(SiglipConfigError) as e:
    import_siglip(hf_dir[0], _teacher_cfg(text_len=16))
  assert "--config.teacher.text_len=12" in str(e.value) and "\n" not in str(e.value)


def test_naflex_and_pickles_refused(tmp_path, hf_dir):
  cfg = json.load(open(f"{hf_dir[0]}/config.json"))
  (tmp_path / "config.json").write_text(json.dumps(dict(cfg, model_type="siglip2")))
  with pytest.raises(SiglipConfigError, match="NaFlex"):
    import_siglip(str(tmp_path), _teacher_cfg())
  pickles = tmp_path / "pickled"
  pickles.mkdir()
  (pickles / "config.json").write_text(json.dumps(cfg))
  (pickles / "pytorch_model.bin").write_bytes(b"\x80")
  with pytest.raises(PickleCheckpointError):
    import_siglip(str(pickles), _teacher_cfg())


def test_train_teacher_imports_hf_checkpoint(hf_dir, tmp_path):
  from arm_jax.config import load_config
  from arm_jax.tokenizer.train_teacher import load_teacher, train_teacher
  path, hf_model = hf_dir
  cfg = load_config("shapes_tiny", [
      f"--config.teacher.hf_checkpoint={path}", f"--config.data.image_size={IMAGE}",
      f"--config.teacher.patch_size={PATCH}", f"--config.teacher.d_model={D}",
      f"--config.teacher.n_layers={LAYERS}", f"--config.teacher.text_layers={LAYERS - 1}",
      f"--config.teacher.n_heads={HEADS}", f"--config.teacher.d_ff={FF}",
      f"--config.teacher.vocab_size={VOCAB}", f"--config.teacher.text_len={TEXT_LEN}"])
  assert train_teacher(cfg, str(tmp_path)) == {"imported": path}
  teacher = load_teacher(cfg, str(tmp_path))
  ids = np.arange(2 * TEXT_LEN).reshape(2, TEXT_LEN) % VOCAB
  images = np.full((1, IMAGE, IMAGE, 3), 200, np.uint8)
  with torch.no_grad():
    want = hf_model(input_ids=torch.tensor(ids),
                    pixel_values=torch.full((1, 3, IMAGE, IMAGE), 200 / 127.5 - 1)).logits_per_text
  got = teacher.logits(jnp.asarray(images), jnp.asarray(ids, jnp.int32))
  np.testing.assert_allclose(np.asarray(got), want.numpy(), atol=2e-4, rtol=1e-4)
