import json
import os

from arm_jax import cli
from arm_jax.data.build import build_for_workdir

COUNTS = ["--config.data.num_train=12", "--config.data.num_validation=4",
          "--config.data.num_test=4"]


def _result(out: str) -> dict:
  """The json summary build-data prints last."""
  return json.loads(out[out.rindex("\n{") + 1:] if "\n{" in out else out[out.index("{"):])


def test_cli_build_data_then_again_is_a_no_op(tmp_path, capsys, helpers):
  args = ["build-data", "--workdir", str(tmp_path)] + COUNTS
  assert cli.main(args) == 0
  first = _result(capsys.readouterr().out)
  assert os.path.isdir(first["images"]) and os.path.isfile(first["text_tokenizer"])
  mtime = os.path.getmtime(first["text_tokenizer"])
  assert cli.main(args) == 0
  second = _result(capsys.readouterr().out)
  assert second["images"] == first["images"]
  assert os.path.getmtime(second["text_tokenizer"]) == mtime
  # the demo's stage function finds the same build
  cfg = helpers.tiny_config(*COUNTS)
  assert build_for_workdir(cfg, str(tmp_path))["images"] == first["images"]


def test_cli_unknown_dataset_is_one_line_exit_2(tmp_path, capsys):
  rc = cli.main(["build-data", "--workdir", str(tmp_path), "--config.data.dataset=nope"])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2 and "dataset 'nope' not found" in err[-1] and err[-1].startswith("arm-jax")
