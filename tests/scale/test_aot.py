"""`arm-jax aot`: the real pretraining step compiled for a small TPU slice on this CPU host, the
one-line refusal of a step that does not fit, and the analytic path for GPU slices.

The TPU cases need libtpu (`pip install -r requirements-tpu.txt`) and skip with that reason
without it. The compiled case is the pretraining step of a 2-layer model with splash attention
under an FSDP mesh over the 4 chips of v5p:2x2x1 (the 7B recipe's layout, shrunk); the RL and
decode steps compile the same way (`--steps`), left out here for time.
"""
import importlib.util
import re

import pytest

from arm_jax import aot, cli
from arm_jax.config import load_config

needs_libtpu = pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason="jax[tpu] (libtpu) is not installed: pip install -r requirements-tpu.txt")

SMALL = ["--config.model.n_layers=2", "--config.model.d_model=256", "--config.model.head_dim=64",
         "--config.model.d_ff=768", "--config.model.attention=splash",
         "--config.model.remat=dots_with_no_batch_dims_saveable", "--config.mesh.shape=(1,-1,1)",
         "--config.train.batch_size=8", "--config.train.seq_len=256",
         "--config.model.max_seq_len=256"]
# Logits alone: 16 sequences x 8192 tokens x 152K vocabulary x 4 bytes = 75 GiB per chip.
OVERSIZED = ["--config.model.text_vocab_size=152064", "--config.mesh.shape=(1,-1,1)",
             "--config.train.batch_size=64", "--config.train.seq_len=8192"]


def _aot(capsys, *args):
  code = cli.main(["aot", "--config", "shapes_tiny", *args])
  out, err = capsys.readouterr()
  return code, out, err


@needs_libtpu
def test_aot_compiles_the_train_step_for_a_small_tpu_slice(capsys):
  code, out, err = _aot(capsys, "--topology", "v5p:2x2x1", "--steps", "pretrain", *SMALL)
  assert code == 0, err[-2000:]
  assert "on v5p-8 (4 x v5p" in out and "attention splash" in out
  used, hbm = map(float, re.search(r"memory per chip ([\d.]+) GiB of ([\d.]+) GiB HBM", out)
                  .groups())
  assert 0 < used < hbm == 95.0
  assert re.search(r"arguments 0\.0[1-9] GiB", out)   # f32 params + Adam, sharded 4 ways
  assert "FLOPs per step (analytic" in out and "predicted" in out


@needs_libtpu
def test_aot_refuses_a_step_that_does_not_fit_in_one_line(capsys):
  code, out, err = _aot(capsys, "--topology", "v5p:2x2x1", "--steps", "pretrain", *OVERSIZED)
  assert code == 2
  line = err.strip()
  assert "\n" not in line and "does not fit on v5p-8" in line, err[-2000:]
  assert re.search(r"over by [\d.]+ GiB", line)
  assert "--config.train.grad_accum=2" in line and "model.remat=full" in line


def test_gpu_slice_reports_the_analytic_estimate(capsys):
  code = cli.main(["aot", "--config", "gpu_h100", "--topology", "h100-8"])
  out, err = capsys.readouterr()
  assert code == 0, err
  assert "GPUs cannot be compiled on this host" in out
  peak = float(re.search(r"peak\s+([\d.]+) GiB", out)[1])
  assert 30 < peak < 80    # the shipped GPU recipe fits an H100
  assert "8.08B parameters" in out


def test_gpu_slice_that_does_not_fit_is_refused(capsys):
  code = cli.main(["aot", "--config", "gpu_h100", "--topology", "h100-8",
                   "--config.train.grad_accum=1"])
  _, err = capsys.readouterr()
  assert code == 2 and "estimated (analytic)" in err and "over by" in err
  assert "--config.train.grad_accum=2 (8 sequences per chip" in err


def test_unknown_topology_or_step_is_a_one_line_error(capsys):
  code, _, err = _aot(capsys, "--topology", "v9z-8")
  assert code == 2 and "unknown accelerator 'v9z-8'" in err and err.count("\n") == 1
  code, _, err = _aot(capsys, "--topology", "h100-8", "--steps", "pretrain,train")
  assert code == 2 and "--steps: unknown train; choose from pretrain,rl,decode" in err


def test_tpu_target_without_libtpu_says_what_to_install(monkeypatch):
  monkeypatch.setattr(aot.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(aot.NoTpuCompilerError, match="requirements-tpu.txt"):
    aot.aot_report(load_config("shapes_tiny"), "v5p:2x2x1")


def test_memory_estimate_scales_with_the_micro_batch():
  from arm_jax.train import memory
  cfg = lambda ga: load_config("arm_7b", [f"--config.train.grad_accum={ga}"])
  a, b = memory.estimate(cfg(2), 32), memory.estimate(cfg(4), 32)
  assert a.state == b.state and a.saved == 2 * b.saved
  # Parameters + Adam moments, f32, sharded over 32 chips: 12 bytes x 8.08B / 32.
  assert abs(a.state / 2**30 - 12 * 8.08e9 / 32 / 2**30) < 0.05
