"""The commands end to end: import-hf -> pretrain --init -> export-hf -> transformers."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny_hf  # noqa: E402
from flax import nnx  # noqa: E402

from arm_jax import cli  # noqa: E402
from arm_jax.config import ConfigError  # noqa: E402
from arm_jax.interop.checkpoint_params import find_step_dir, restore_params  # noqa: E402
from arm_jax.interop.hf_import import import_params  # noqa: E402
from arm_jax.interop.weights import load_params  # noqa: E402
from arm_jax.model.transformer import Decoder, ModelConfig  # noqa: E402
from arm_jax import sharding as shd  # noqa: E402
from arm_jax.train.pretrain import decoder_fn  # noqa: E402
from arm_jax.train.state import param_shardings  # noqa: E402

TRAIN = ["--config.train.steps=1", "--config.train.batch_size=2", "--config.train.seq_len=16",
         "--config.train.log_every=1", "--config.train.warmup_steps=1",
         "--config.mesh.shape=(1,1,1)"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  root = tmp_path_factory.mktemp("cmd")
  hf = tiny_hf.save(tiny_hf.hf_model("qwen2"), str(root / "hf"), shard=True)
  out = str(root / "init")
  argv = ["import-hf", "--hf", hf, "--out", out, "--workdir", str(root / "run")]
  assert cli.main(argv + tiny_hf.overrides()) == 0
  return root, hf, out


def test_import_output_loads_checked_and_sharded(imported):
  _, hf, out = imported
  assert os.path.isfile(os.path.join(out, "tokenizer.json"))
  cfg = tiny_hf.config("--config.mesh.shape=(2,2,2)")
  mesh = shd.make_mesh(cfg.mesh)
  _, _, shardings = param_shardings(decoder_fn(cfg), mesh, shd.rules_of(cfg.mesh))
  placed = load_params(out, config=cfg, shardings=shardings)
  assert placed["blocks"]["mlp"]["up_proj"]["kernel"].sharding == \
      shardings["blocks"]["mlp"]["up_proj"]["kernel"]
  direct = import_params(hf, cfg)
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, load_params(out)),
               jax.tree.map(np.asarray, direct))
  with pytest.raises(ConfigError, match=r"model\.max_grid=4"):
    load_params(out, config=tiny_hf.config(max_grid=5))


def test_pretrain_from_import_then_export_loads_in_transformers(imported, capsys):
  root, _, init = imported
  run, out = str(root / "run"), str(root / "export")
  tok = os.path.join(init, "tokenizer.json")
  train = tiny_hf.overrides() + TRAIN + [f"--config.data.text_tokenizer={tok}"]
  assert cli.main(["pretrain", "--workdir", run, "--init", init] + train) == 0
  # The recipe on the command line is shapes_tiny as is: export takes the run's own model config.
  assert cli.main(["export-hf", "--workdir", run, "--out", out]) == 0
  assert "exported" in capsys.readouterr().out
  assert os.path.isfile(os.path.join(out, "tokenizer.json"))
  cfg = tiny_hf.config(*TRAIN)
  params = restore_params(find_step_dir(run), cfg)
  model = nnx.merge(nnx.graphdef(nnx.eval_shape(
      lambda: Decoder(ModelConfig.from_config(cfg.model), rngs=nnx.Rngs(0)))), params)
  tokens = tiny_hf.mixed_tokens(ModelConfig.from_config(cfg.model).vocab)
  ours = np.asarray(model(jnp.asarray(tokens)))
  np.testing.assert_allclose(tiny_hf.torch_logits(tiny_hf.load(out), tokens), ours, atol=2e-5,
                             rtol=0)


def test_commands_report_bad_input_in_one_line(tmp_path, capsys):
  (tmp_path / "pytorch_model.bin").write_bytes(b"not unpickled")
  (tmp_path / "config.json").write_text("{}")
  assert cli.main(["import-hf", "--hf", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and "safe_serialization=True" in err
  assert cli.main(["export-hf", "--workdir", str(tmp_path / "none")]) == 2
  assert "no decoder checkpoint under" in capsys.readouterr().err
