"""`arm-jax eval`: arguments, the report it writes, and one-line errors for bad input."""
import argparse
import json
import os

import pytest

from arm_jax import cli
from arm_jax.config import load_config
from arm_jax.errors import UserError
from arm_jax.eval import command
from arm_jax.eval.reference_models import OracleModel
from arm_jax.eval.sets import build_sets

SMALL = ["--config.eval.num_geneval=6", "--config.eval.num_wise=3", "--config.eval.num_edit=5",
         "--config.eval.num_und=5"]


def _args(workdir, **kw):
  return argparse.Namespace(**({"workdir": str(workdir), "checkpoint": "", "out": "",
                                "tasks": "geneval,wise,edit,und", "tokenizer_metrics": ""} | kw))


def test_scores_the_loaded_model_and_writes_the_report(tmp_path, capsys):
  config = load_config("shapes_tiny", SMALL)
  (tmp_path / "tok.json").write_text(json.dumps({"psnr": 21.5, "code_usage": 0.7}))
  args = _args(tmp_path, tasks="geneval,und", tokenizer_metrics=str(tmp_path / "tok.json"))
  loaded = []

  def load(cfg, a):
    loaded.append(a.checkpoint)
    return OracleModel(build_sets(cfg))

  assert command.run(config, args, load_model=load) == 0
  out = capsys.readouterr().out
  assert "GenEval      1.000" in out and out.strip().endswith("report.md")
  metrics = json.load(open(tmp_path / "eval" / "metrics.json"))
  assert set(metrics["headline"]) == {"GenEval", "POPE F1", "und acc", "MC acc", "count acc"}
  assert set(metrics["headline_se"]) == {"GenEval", "POPE F1", "und acc"}
  assert metrics["tokenizer"] == {"psnr": 21.5, "code_usage": 0.7}
  assert loaded == [""]


def test_parser_knows_the_command():
  args = cli.build_parser().parse_args(["eval", "--workdir", "w", "--tasks", "edit"])
  assert (args.command, args.workdir, args.tasks, args.out) == ("eval", "w", "edit", "")


def test_bad_tasks_fail_before_loading_anything(tmp_path, capsys):
  assert cli.main(["eval", "--workdir", str(tmp_path), "--tasks", "geneval,mmmu"]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("arm-jax eval: error: --tasks") and len(err.splitlines()) == 1


@pytest.mark.parametrize("content,message", [("[1, 2]", "JSON object"), ("{oops", "cannot read")])
def test_bad_tokenizer_metrics_file(tmp_path, content, message):
  path = tmp_path / "tok.json"
  path.write_text(content)
  with pytest.raises(UserError, match=message):
    command.run(load_config("shapes_tiny", SMALL), _args(tmp_path, tokenizer_metrics=str(path)),
                load_model=lambda c, a: pytest.fail("loaded a model for bad input"))
  assert not os.path.exists(tmp_path / "eval")
