import pytest

from arm_jax.config import ConfigError, load_config
from arm_jax import cli


@pytest.mark.parametrize("name", ["shapes_tiny", "shapes_cells", "arm_7b", "gpu_h100"])
def test_recipes_load(name):
  cfg = load_config(name)
  assert cfg.name == name


def test_cells_recipe_puts_one_patch_on_each_grid_cell():
  cfg = load_config("shapes_cells")
  grid = cfg.data.image_size // cfg.tokenizer.patch_size
  assert grid == cfg.data.grid == cfg.model.max_grid
  assert cfg.data.image_size % cfg.data.grid == 0


def test_image_embed_init_is_checked():
  with pytest.raises(ConfigError, match="image_embed_init"):
    load_config("shapes_tiny", ["--config.model.image_embed_init=teacher"])


def test_7b_shapes():
  m = load_config("arm_7b").model
  assert (m.n_layers, m.d_model, m.n_heads, m.n_kv_heads, m.d_ff, m.rope_theta,
          m.text_vocab_size) == (28, 3584, 28, 4, 18944, 1e6, 152064)


def test_override_types():
  cfg = load_config("shapes_tiny", ["--config.train.steps=7", "--config.train.lr=1",
                                    "--config.mesh.shape=(2,2,2)", "--config.model.remat=full"])
  assert cfg.train.steps == 7 and isinstance(cfg.train.lr, float)
  assert tuple(cfg.mesh.shape) == (2, 2, 2) and cfg.model.remat == "full"


def test_unknown_key_names_closest():
  with pytest.raises(ConfigError) as e:
    load_config("shapes_tiny", ["--config.train.stepz=3"])
  assert "train.steps" in str(e.value) and "\n" not in str(e.value)


def test_wrong_type_and_cross_field_errors():
  with pytest.raises(ConfigError, match="expects int"):
    load_config("shapes_tiny", ["--config.train.steps=many"])
  with pytest.raises(ConfigError, match="n_kv_heads"):
    load_config("shapes_tiny", ["--config.model.n_kv_heads=3"])
  with pytest.raises(ConfigError, match="image_vocab_size"):
    load_config("shapes_tiny", ["--config.model.image_vocab_size=999"])
  with pytest.raises(ConfigError, match="entropy_temperature"):
    load_config("shapes_tiny", ["--config.tokenizer.entropy_temperature=0.0"])
  load_config("shapes_tiny", ["--config.tokenizer.entropy_temperature=0.0",
                              "--config.tokenizer.w_entropy=0.0"])
  with pytest.raises(ConfigError, match="rl.t2i_prompts"):
    load_config("shapes_tiny", ["--config.rl.t2i_prompts=dpg"])
  with pytest.raises(ConfigError, match="needs data.warmup_mixture"):
    load_config("shapes_tiny", ["--config.data.warmup_steps=10"])
  with pytest.raises(ConfigError, match="data.warmup_mixture entry"):
    load_config("shapes_tiny", ["--config.data.warmup_mixture=(('vqa', 1.0),)"])
  with pytest.raises(ConfigError, match="data.loss_weights entry"):
    load_config("shapes_tiny", ["--config.data.loss_weights=(('und', 0.0),)"])
  assert dict(load_config("shapes_tiny", ["--config.data.loss_weights=(('und', 2.0),)"])
              .data.loss_weights) == {"und": 2.0}
  with pytest.raises(ConfigError, match="perception_data"):
    load_config("shapes_tiny", ["--config.data.perception_data=web"])
  with pytest.raises(ConfigError, match="renders the shapes world"):
    load_config("shapes_tiny", ["--config.data.perception_data=world",
                                "--config.data.dataset=synthetic"])


def test_cli_unknown_key_is_one_line_exit_2(capsys):
  assert cli.main(["pretrain", "--config.train.lr_max=1"]) == 2
  err = capsys.readouterr().err.strip()
  assert err.count("\n") == 0 and "train.lr" in err


def test_cli_help(capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["--help"])
  assert e.value.code == 0
  assert "pretrain" in capsys.readouterr().out
