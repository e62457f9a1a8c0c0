"""The tokenizer stages end to end on a tiny built world: data -> teacher -> tokenizer -> codes.

One module-scoped run (a few steps each) is shared by the tests: the CLI commands, the API
loaded from the checkpoint, metrics, tokenize-dataset + decode, the ablation table.
"""
import json
import os
import types

import numpy as np
import pytest

from arm_jax import cli
from arm_jax.config import load_config
from arm_jax.data.build import build_data
from arm_jax.errors import UserError
from arm_jax.tokenizer import stages
from arm_jax.tokenizer.api import load_visual_tokenizer
from arm_jax.tokenizer.train_tokenizer import tokenizer_fn, train_tokenizer

WORLD = ["--config.data.num_train=24", "--config.data.num_validation=8",
         "--config.data.num_test=8"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, request):
  tiny = request.getfixturevalue("tiny_tok") + WORLD
  workdir = str(tmp_path_factory.mktemp("tok"))
  cfg = load_config("shapes_tiny", tiny)
  build_data(cfg, os.path.join(workdir, "data"))
  # The CLI path, as a user runs it (one-device mesh from the overrides).
  assert cli.main(["train-teacher", "--workdir", workdir] + tiny) == 0
  assert cli.main(["train-tokenizer", "--workdir", workdir, "--skip-metrics"] + tiny) == 0
  return types.SimpleNamespace(cfg=cfg, workdir=workdir, overrides=tiny)


def test_resume_is_a_no_op_and_api_loads(run):
  assert stages.train_tokenizer(run.cfg, run.workdir) == {}   # finished: nothing to train
  vt = load_visual_tokenizer(run.cfg, run.workdir)
  codes = vt.encode(np.zeros((3, 32, 32, 3), np.uint8))
  assert codes.shape == (3, 4, 4) and vt.decode(codes).shape == (3, 32, 32, 3)


def test_metrics_are_in_range(run):
  m = stages.tokenizer_metrics(run.cfg, run.workdir)
  t = m["tokenizer"]
  assert 0 < t["psnr"] < 100 and 0 < t["code_usage"] <= 100
  assert 1 <= t["perplexity"] <= t["codebook_size"]
  for who in ("teacher", "tokenizer"):
    assert 0 <= m[who]["zero_shot"] <= min(m[who]["zero_shot_color"], m[who]["zero_shot_shape"])
  saved = json.load(open(os.path.join(run.workdir, "tokenizer", "tokenizer_metrics.json")))
  assert saved["tokenizer"]["psnr"] == pytest.approx(t["psnr"])
  from PIL import Image
  grid = Image.open(os.path.join(run.workdir, "tokenizer", "tokenizer_reconstructions.png"))
  assert grid.width > 8 * 32 and grid.height > 2 * 32   # 8 images over their reconstructions


def test_tokenize_dataset_then_decode(run, tmp_path):
  paths = stages.tokenize_dataset(run.cfg, run.workdir)
  assert sorted(k.split("/")[-1] for k in paths) == ["test", "train", "validation"]
  mtimes = {k: os.path.getmtime(p) for k, p in paths.items()}
  stages.tokenize_dataset(run.cfg, run.workdir)   # same weights: splits are skipped
  assert mtimes == {k: os.path.getmtime(p) for k, p in paths.items()}
  out = tmp_path / "png"
  assert cli.main(["decode", "--workdir", run.workdir, "--split", "validation", "--count", "3",
                   "--out", str(out)] + run.overrides) == 0
  assert sorted(os.listdir(out)) == ["0000.png", "0001.png", "0002.png"]
  # Codes from a file; a code out of range is a one-line error with exit status 2.
  np.save(tmp_path / "codes.npy", np.full((4, 4), 239, np.int32))
  assert cli.main(["decode", "--workdir", run.workdir, "--codes", str(tmp_path / "codes.npy"),
                   "--out", str(out)] + run.overrides) == 0
  np.save(tmp_path / "bad.npy", np.full((4, 4), 240, np.int32))
  assert cli.main(["decode", "--workdir", run.workdir, "--codes", str(tmp_path / "bad.npy")]
                  + run.overrides) == 2


def test_ablation_table(run, capsys):
  extra = ["--config.tokenizer.ablation=(('pixel',('w_pixel',)),)",
           "--config.tokenizer.ablation_steps=1"]
  assert cli.main(["tokenizer-ablation", "--workdir", run.workdir] + run.overrides + extra) == 0
  table = open(os.path.join(run.workdir, "tokenizer", "ablation.md")).read()
  assert "| teacher (SigLIP) |" in table and "| pixel |" in table
  assert "code-entropy weight 0.02 in every row" in table   # shapes_tiny's regulariser stays on
  rows = json.load(open(os.path.join(run.workdir, "tokenizer", "ablation.json")))
  assert [r["losses"] for r in rows] == ["teacher (SigLIP)", "pixel"] and rows[1]["steps"] == 1


def test_bad_inputs_are_one_line_errors(run, tmp_path, tiny_tok):
  cfg = load_config("shapes_tiny", tiny_tok + [f"--config.tokenizer.{w}=0" for w in
                                               ("w_pixel", "w_feature", "w_sigmoid", "w_caption")])
  with pytest.raises(UserError, match="at least one"):
    stages.train_tokenizer(cfg, str(tmp_path))
  with pytest.raises(UserError, match="train-teacher"):
    stages.train_tokenizer(load_config("shapes_tiny", tiny_tok), str(tmp_path))
  wider = load_config("shapes_tiny", run.overrides + ["--config.tokenizer.d_model=48"])
  with pytest.raises(UserError, match="init_from_teacher"):
    train_tokenizer(wider, run.workdir, name="tokenizer_wider")
  with pytest.raises(UserError, match="quantizer"):
    tokenizer_fn(load_config("shapes_tiny", ["--config.tokenizer.quantizer=lfq"]))


def test_pretrain_seeds_rows_from_the_trained_teacher_and_tokenizer(run):
  """model.image_embed_init: 'tokenizer' seeds the code rows only; 'joint' the text rows too,
  from the same teacher and tokenizer checkpoints; the specials keep their fresh init."""
  from flax import nnx
  from arm_jax.model.transformer import ModelConfig
  from arm_jax.train.pretrain import decoder_fn, semantic_init
  v = ModelConfig.from_config(run.cfg.model).vocab
  fresh = np.asarray(nnx.to_pure_dict(nnx.state(decoder_fn(run.cfg)(
      nnx.Rngs(run.cfg.train.seed))))["embed"]["embedding"])
  table = {}
  for mode in ("tokenizer", "joint"):
    cfg = load_config("shapes_tiny", run.overrides + [f"--config.model.image_embed_init={mode}"])
    table[mode] = np.asarray(semantic_init(cfg, run.workdir)["embed"]["embedding"])
  np.testing.assert_array_equal(table["tokenizer"][:v.image_offset], fresh[:v.image_offset])
  assert not np.allclose(table["joint"][:v.text_size], fresh[:v.text_size])
  np.testing.assert_array_equal(table["joint"][v.text_size:v.image_offset],
                                fresh[v.text_size:v.image_offset])
  assert not np.allclose(table["joint"][v.image_offset:], table["tokenizer"][v.image_offset:])
  assert not np.allclose(table["joint"][v.image_offset:], fresh[v.image_offset:])
