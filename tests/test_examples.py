"""The study scripts in examples/: a user error is one line on stderr, not a traceback."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("script", ["tokenizer_ceiling.py", "heldout_reward.py"])
def test_missing_checkpoint_is_one_line(script, tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  run = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script),
                        "--workdir", str(tmp_path)], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=300)
  assert run.returncode != 0
  lines = [l for l in run.stderr.splitlines() if f"{script}: error:" in l]
  assert len(lines) == 1 and "checkpoint" in lines[0], run.stderr
  assert "Traceback" not in run.stderr


def test_unknown_config_key_is_one_line(tmp_path):
  run = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "tokenizer_ceiling.py"),
                        "--workdir", str(tmp_path), "--config.eval.no_such_key=1"],
                       capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                       cwd=ROOT, timeout=300)
  assert run.returncode != 0 and "Traceback" not in run.stderr
  assert "no_such_key" in run.stderr.strip().splitlines()[-1]
