"""The shared train loop: checkpoints, resume after kill -9, SIGTERM, corrupt checkpoints, NaNs."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from arm_jax.config import load_config
from arm_jax.data.synthetic import synthetic_dataset
from arm_jax.errors import UserError
from arm_jax.train.checkpoint import (CheckpointError, Checkpoints, WorkdirBusyError,
                                      workdir_lock)
from arm_jax.train.loop import NonFiniteLossError
from arm_jax.train.pretrain import pretrain

ONE_DEVICE = ["--config.mesh.shape=(1,1,1)"]


def _cfg(overrides, *extra):
  return load_config("shapes_tiny", overrides + ONE_DEVICE + list(extra))


def _cli(workdir, overrides, *extra):
  cmd = [sys.executable, "-m", "arm_jax.cli", "pretrain", "--config", "shapes_tiny",
         "--workdir", str(workdir)] + overrides + ONE_DEVICE + list(extra)
  # One process by construction: keep cluster detection from reading whatever TPU or SLURM
  # variables this test worker's environment may carry.
  env = dict(os.environ, ARM_DISTRIBUTED="0")
  return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _final_params(workdir, step):
  path = os.path.join(workdir, "checkpoints", "pretrain", str(step), "state")
  return ocp.StandardCheckpointer().restore(path)["params"]


def _wait_for(path, proc, timeout=240):
  t = time.time()
  while not os.path.exists(path):
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    assert time.time() - t < timeout
    time.sleep(0.02)


def test_kill9_resume_is_bit_identical(tmp_path, tiny_overrides):
  args = ["--config.train.steps=150", "--config.train.ckpt_every=10"]
  ref = _cli(tmp_path / "ref", tiny_overrides, *args)
  victim = _cli(tmp_path / "run", tiny_overrides, *args)
  _wait_for(tmp_path / "run" / "checkpoints" / "pretrain" / "20", victim)
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  assert victim.returncode == -signal.SIGKILL
  resumed = _cli(tmp_path / "run", tiny_overrides, *args)
  for p in (ref, resumed):
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
  a, b = _final_params(tmp_path / "ref", 150), _final_params(tmp_path / "run", 150)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_sigterm_saves_checkpoint_and_exits_0(tmp_path, tiny_overrides):
  proc = _cli(tmp_path, tiny_overrides, "--config.train.steps=100000",
              "--config.train.ckpt_every=100000")
  _wait_for(tmp_path / "metrics" / "pretrain.jsonl", proc)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-2000:]
  assert "SIGTERM" in err and "resume" in err
  steps = [int(s) for s in os.listdir(tmp_path / "checkpoints" / "pretrain") if s.isdigit()]
  assert len(steps) == 1 and 0 < steps[0] < 100000
  assert f"stopped by SIGTERM at step {steps[0]};" in err   # the step it says it saved


def test_checkpoint_roundtrip_and_data_position(tmp_path, tiny_overrides):
  cfg = _cfg(tiny_overrides, "--config.train.steps=4", "--config.train.ckpt_every=2")
  state, spec = pretrain(cfg, str(tmp_path))
  saved = _final_params(tmp_path, 4)
  for x, y in zip(jax.tree.leaves(jax.device_get(state["params"])), jax.tree.leaves(saved)):
    np.testing.assert_array_equal(x, y)
  # The data iterator resumes where it stopped: a longer run continues from step 4.
  cfg6 = _cfg(tiny_overrides, "--config.train.steps=6", "--config.train.ckpt_every=2")
  state6, _ = pretrain(cfg6, str(tmp_path))
  assert int(state6["step"]) == 6


def _corrupt(step_dir):
  for root, _, files in os.walk(step_dir / "state"):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"garbage")


def test_corrupt_latest_falls_back_to_previous(tmp_path, tiny_overrides, caplog, monkeypatch):
  cfg = _cfg(tiny_overrides, "--config.train.steps=4", "--config.train.ckpt_every=2")
  pretrain(cfg, str(tmp_path))
  ckpts = tmp_path / "checkpoints" / "pretrain"
  shutil.copytree(ckpts / "2", tmp_path / "step_2_as_saved")
  _corrupt(ckpts / "4")
  # What the resumed run restores, copied before its first step donates the arrays.
  restored, real_restore = [], Checkpoints.restore

  def spy(self, abstract, data_iter=None):
    out = real_restore(self, abstract, data_iter)
    restored.append((abstract, jax.device_get(out[0]), out[1], data_iter.get_state()))
    return out
  monkeypatch.setattr(Checkpoints, "restore", spy)
  cfg6 = _cfg(tiny_overrides, "--config.train.steps=6", "--config.train.ckpt_every=2")
  state, _ = pretrain(cfg6, str(tmp_path))
  assert int(state["step"]) == 6
  assert (tmp_path / "checkpoints" / "pretrain.corrupt" / "4").exists()   # moved, not deleted
  assert "unreadable" in caplog.text
  assert "resumed from step 2" in caplog.text   # not a silent restart from scratch
  # Step 2 came back bit-identical: params, optimizer state, step, RNG and data position.
  (abstract, got, step, position), = restored
  assert step == 2
  saved = ocp.StandardCheckpointer().restore(tmp_path / "step_2_as_saved" / "state", abstract)
  got, saved = (jax.tree_util.tree_flatten_with_path(t)[0] for t in (got, saved))
  assert [p for p, _ in got] == [p for p, _ in saved]
  for (path, x), (_, y) in zip(got, saved):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))
  with open(tmp_path / "step_2_as_saved" / "data" / "process_0-of-1.json") as f:
    assert position == json.load(f)


def test_all_checkpoints_corrupt_is_one_line_error(tmp_path, tiny_overrides):
  cfg = _cfg(tiny_overrides, "--config.train.steps=2", "--config.train.ckpt_every=2")
  pretrain(cfg, str(tmp_path))
  _corrupt(tmp_path / "checkpoints" / "pretrain" / "2")
  with pytest.raises(CheckpointError) as e:
    pretrain(_cfg(tiny_overrides, "--config.train.steps=4"), str(tmp_path))
  assert "\n" not in str(e.value) and "corrupt" in str(e.value)
  assert (tmp_path / "checkpoints" / "pretrain.corrupt" / "2").exists()


def test_shape_mismatch_is_a_user_error_not_corruption(tmp_path, tiny_overrides):
  pretrain(_cfg(tiny_overrides, "--config.train.steps=2"), str(tmp_path))
  with pytest.raises(CheckpointError, match="shape"):
    pretrain(_cfg(tiny_overrides, "--config.train.steps=4", "--config.model.d_ff=96"),
             str(tmp_path))
  assert (tmp_path / "checkpoints" / "pretrain" / "2").exists()


def _poisoned_after(ds, n):
  """The synthetic stream whose loss mask turns NaN from batch `n` on (still a grain iterator)."""
  def poison(i, batch):
    return dict(batch, loss_mask=batch["loss_mask"] * np.nan) if i >= n else batch
  return iter(ds.map_with_index(poison))


def test_nan_loss_skips_updates_then_halts(tmp_path, tiny_overrides):
  cfg = _cfg(tiny_overrides, "--config.train.steps=50", "--config.train.ckpt_every=3",
             "--config.train.max_nan_steps=4", "--config.train.log_every=1")
  from arm_jax.model.transformer import ModelConfig
  vocab = ModelConfig.from_config(cfg.model).vocab.total_size
  data = _poisoned_after(synthetic_dataset(vocab, 8, 32), 3)
  with pytest.raises(NonFiniteLossError) as e:
    pretrain(cfg, str(tmp_path), data_iter=data)
  assert "\n" not in str(e.value) and "4 consecutive" in str(e.value)
  # Every saved checkpoint holds finite parameters (skipped updates never poison them).
  ckpts = tmp_path / "checkpoints" / "pretrain"
  steps = sorted(int(s) for s in os.listdir(ckpts) if s.isdigit())
  assert steps and max(steps) < 50
  for leaf in jax.tree.leaves(_final_params(tmp_path, max(steps))):
    assert np.isfinite(leaf).all()


def test_second_run_on_same_workdir_refuses(tmp_path):
  with workdir_lock(str(tmp_path)):
    with pytest.raises(WorkdirBusyError) as e:
      with workdir_lock(str(tmp_path)):
        pass
  assert isinstance(e.value, UserError) and "--workdir" in str(e.value)
  assert "\n" not in str(e.value)
  with workdir_lock(str(tmp_path)):   # released after the first holder exits
    pass
