"""The fault matrix: each fault a user or the machine can cause, what must happen, and the tests
that pin it down (here unless a file is named: L = tests/train/test_loop.py,
A = tests/decode/test_api.py, F = tests/data/test_folder.py,
M = tests/scale/test_multihost_train.py, I = tests/test_bad_input.py). `make soak`
(tests/soak.py, outside `make test`) adds 20 random kill -9 / SIGTERM points across a
pretraining and an RL run.

kill -9, for every trainer -> the rerun resumes from the newest complete step and finishes
bit-identical to a run never killed (params, optimizer state, RNG, step, data position; RL: the
same prompts at every iteration)
  pretrain, mid-step: L test_kill9_resume_is_bit_identical
  pretrain, mid-save (the half-written step is ignored):
    test_kill9_during_checkpoint_save_resumes_bit_identical
  teacher, tokenizer, one kill mid-step while the step before is half-written:
    test_kill9_mid_step_and_mid_save_resume_bit_identical[teacher, tokenizer]
  RL (GRPO), the same, between the mu updates of an iteration, in the second stage:
    test_kill9_rl_mid_step_and_mid_save_resume_bit_identical
SIGTERM -> checkpoint saved, exit 0, the rerun resumes
  L test_sigterm_saves_checkpoint_and_exits_0;
  M test_two_processes_stop_resume_and_match_one_process (SIGTERM to one host of two)
corrupt latest checkpoint -> the previous one is restored bit-identically (state and data
position) with a one-line warning; the corrupt step is moved to <dir>.corrupt/, not deleted (all
corrupt: a one-line error)
  L test_corrupt_latest_falls_back_to_previous, test_all_checkpoints_corrupt_is_one_line_error
  (a checkpoint of another config is a one-line error, nothing moved:
  L test_shape_mismatch_is_a_user_error_not_corruption)
silent corruption: one flipped byte in any file of a step (array chunks, OCDBT manifest and
b-tree, tree/array metadata, shardings, data position, meta, checksums) -> caught by tensorstore's
CRC-32C, a parse error or the checksums saved with each step; quarantined as above. Bytes no
restore reads (the per-process OCDBT index the merged root replaced, commit markers) leave the
step restoring bit-identically; never silently different values
  test_a_flipped_byte_in_any_checkpoint_file_is_caught_or_never_read
two runs on one workdir -> the second exits 2 with one line naming the first's pid
  test_kill9_during_checkpoint_save_resumes_bit_identical (a second CLI run while the first
  holds the workdir); L test_second_run_on_same_workdir_refuses
NaN/Inf loss -> updates skipped, then a one-line halt; no checkpoint holds a poisoned update
  L test_nan_loss_skips_updates_then_halts
prompt empty / 10k characters / invalid UTF-8, for generate, edit and ask -> one-line PromptError;
CLI exit 2 with one line, no traceback, before any checkpoint is loaded
  generate (API): A test_bad_prompts_are_one_line_errors
  edit, ask (API): I test_bad_instructions_and_questions_are_one_line_errors
  CLI: I test_bad_prompt_on_the_command_line_is_one_line,
  I test_cli_reports_bad_input_without_traceback
image truncated or corrupt (PNG, JPEG) -> one-line ImageError
  A test_image_files_are_checked, test_commands_report_bad_input_in_one_line;
  I test_bad_image_files_are_one_line_errors, I test_cli_reports_bad_input_without_traceback
image of the wrong mode (16-bit, palette, CMYK, 2-channel LA; A: L, RGBA) -> one-line ImageError
naming the mode (16-bit: rescale, since convert('RGB') would clip)
  I test_bad_image_files_are_one_line_errors, I test_bad_image_on_the_command_line_is_one_line
image of the wrong size or shape (too large to decode safely, empty, 2 channels, uint16 array)
  I test_bad_image_files_are_one_line_errors[bomb.png],
  I test_bad_image_arrays_are_one_line_errors;
  A test_bad_images_are_one_line_errors (2-D, 4 channels, float)
folder import (build-data --from) -> 16-bit grayscale scaled to 8 bits; 32-bit and oversized
images skipped with a reason; too small skipped
  I test_folder_import_high_bit_depth_and_oversized_images; F test_import_converts_skips_and_indexes
disk full on save -> one-line CheckpointError naming the failed step (also when an async save
fails and it surfaces at the next save), the previous checkpoint intact, restorable, resumable;
with space freed, the same step saves in the same process
  test_disk_full_on_save_keeps_previous_checkpoint (injected ENOSPC, sync and async),
  test_disk_full_while_training_stops_in_one_line_and_resumes (the train loop),
  test_disk_full_on_a_tiny_tmpfs (a real full filesystem in a private tmpfs; skipped, with the
  reason, where unshare(1) cannot mount one),
  test_retried_save_is_out_of_reach_of_the_failed_attempts_late_writes (a write of the failed
  attempt landing during the retry: no "File exists", nothing of it in the saved step)
disk full on a metrics write -> one-line MetricsWriteError naming the step and file; the rows
already written stay readable and a rerun appends after them
  tests/train/test_metrics_log.py test_disk_full_on_metrics_write_is_one_line_and_earlier_rows_survive

Training runs use the tiny f32 decoder of the other train tests on one device, a few steps each;
teacher and tokenizer the tiny shapes of tests/tokenizer, RL those of tests/rl/test_rl_loop.py.
"""
import errno
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
import zlib

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from etils import epath

from arm_jax.config import load_config
from arm_jax.errors import UserError
from arm_jax.model.transformer import ModelConfig
from arm_jax.train.checkpoint import CheckpointError, Checkpoints
from arm_jax.train.pretrain import pretrain
from one_line import ONE_DEVICE, one_error_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=REPO)


# --- helpers --------------------------------------------------------------------------------------

def _pretrain_cmd(workdir, overrides, *extra, python=("-m", "arm_jax.cli")):
  return [sys.executable, *python, "pretrain", "--config", "shapes_tiny", "--workdir",
          str(workdir)] + list(overrides) + ONE_DEVICE + list(extra)


def _popen(cmd, **env):
  return subprocess.Popen(cmd, cwd=REPO, env=dict(ENV, **env), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, what, deadline_s=300):
  """Polls for `path` while `proc` runs; a hang guard, not a timing check."""
  end = time.monotonic() + deadline_s
  while not os.path.exists(path):
    if proc.poll() is not None:
      pytest.fail(f"{what}: the process exited ({proc.returncode}) first: "
                  f"{proc.communicate()[1][-2000:]}")
    if time.monotonic() > end:
      proc.kill()
      pytest.fail(f"{what}: {path} never appeared")
    time.sleep(0.02)


def _params(workdir, step):
  path = os.path.join(workdir, "checkpoints", "pretrain", str(step), "state")
  return ocp.StandardCheckpointer().restore(path)["params"]


def _assert_same(a, b):
  a, b = jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_flatten_with_path(b)[0]
  assert [p for p, _ in a] == [p for p, _ in b]
  for (path, x), (_, y) in zip(a, b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


# --- kill -9 in every trainer ------------------------------------------------------------------

# A trainer in a child process that hangs where the environment says, so the kill lands there:
#   HANG_AT_STEP=k        inside its k-th train-step call (mid-step: the batch is drawn, the update
#                         not applied, the data iterator ahead of the last checkpoint)
#   HANG_IN_SAVE=<s>/<n>  at the first write into stage s's step n temporary `state` directory
#                         (mid-save: arrays and metadata of that step half-written, not renamed)
# and drops <name>_MARKER when it hangs there. With async saves both hang at once: the save in
# orbax's writer thread, the loop one step on. argv: a CLI command line, or `rl-tiny WORKDIR`.
_HANGING_RUN = textwrap.dedent(r"""
  import os, re, sys, time
  sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
  from etils import epath
  from arm_jax.rl import loop as rl_loop
  from arm_jax.train import loop as train_loop

  def hang(name):
    open(os.environ[name + "_MARKER"], "w").close()
    time.sleep(3600)

  if "HANG_IN_SAVE" in os.environ:
    in_step = re.compile(re.escape("/" + os.environ["HANG_IN_SAVE"]) +
                         r"\.orbax-checkpoint-tmp[^/]*/state")
    cls = type(epath.Path("/"))
    write_text = cls.write_text
    def hanging_write_text(self, *args, **kwargs):
      n = write_text(self, *args, **kwargs)
      if in_step.search(str(self)):
        hang("HANG_IN_SAVE")
      return n
    cls.write_text = hanging_write_text

  if "HANG_AT_STEP" in os.environ:
    calls = [0]
    def hanging(make_train_step):
      def make(*args, **kwargs):
        step_fn = make_train_step(*args, **kwargs)
        def step(state, batch):
          calls[0] += 1
          if calls[0] == int(os.environ["HANG_AT_STEP"]):
            hang("HANG_AT_STEP")
          return step_fn(state, batch)
        return step
      return make
    train_loop.make_train_step = hanging(train_loop.make_train_step)
    rl_loop.make_train_step = hanging(rl_loop.make_train_step)

  if sys.argv[1] == "rl-tiny":
    import test_fault_matrix
    test_fault_matrix.run_rl(sys.argv[2])
  else:
    from arm_jax import cli
    sys.exit(cli.main(sys.argv[1:]))
""")


def _hanging(cmd):
  """The trainer command `cmd` (a CLI argv or ["rl-tiny", workdir]) under _HANGING_RUN."""
  return [sys.executable, "-c", _HANGING_RUN] + [str(a) for a in cmd]


def _killed_at(cmd, marker_dir, **hangs):
  """Runs `cmd` until it hangs at every point in `hangs` (HANG_AT_STEP, HANG_IN_SAVE), kills it
  with SIGKILL there, and starts it again to run to the end (returns that Popen)."""
  markers = {name: marker_dir / f"hung_{name}" for name in hangs}
  victim = _popen(_hanging(cmd), **hangs, **{f"{k}_MARKER": str(v) for k, v in markers.items()})
  for name, marker in markers.items():
    _wait_for(marker, victim, f"the run reaching {name}={hangs[name]}")
  victim.send_signal(signal.SIGKILL)
  victim.communicate()
  assert victim.returncode == -signal.SIGKILL
  return _popen(_hanging(cmd))


def _finish(*procs):
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]


def _assert_same_step(a, b):
  """Two step directories hold the same state (params, opt_state, step, rng, ...) and the same
  data position."""
  restore = lambda d: ocp.StandardCheckpointer().restore(os.path.join(d, "state"))
  _assert_same(restore(a), restore(b))
  names = os.listdir(os.path.join(a, "data")) if os.path.isdir(os.path.join(a, "data")) else []
  for name in set(names) - {"commit_success.txt"}:   # that one names its own path
    with open(os.path.join(a, "data", name), "rb") as fa, \
         open(os.path.join(b, "data", name), "rb") as fb:
      assert fa.read() == fb.read(), f"data/{name} differs"


def test_kill9_during_checkpoint_save_resumes_bit_identical(tmp_path, tiny_overrides):
  args = ["--config.train.steps=8", "--config.train.ckpt_every=2"]
  marker = tmp_path / "saving"
  ref = _popen(_pretrain_cmd(tmp_path / "ref", tiny_overrides, *args))
  victim = _popen(_hanging(_pretrain_cmd(tmp_path / "run", tiny_overrides, *args)[3:]),
                  HANG_IN_SAVE="pretrain/4", HANG_IN_SAVE_MARKER=str(marker))
  _wait_for(marker, victim, "the victim run reaching the save of step 4")

  # Two runs on one workdir: while the victim still holds it, a second run refuses at once.
  second = subprocess.run(_pretrain_cmd(tmp_path / "run", tiny_overrides, *args), cwd=REPO,
                          env=ENV, capture_output=True, text=True, timeout=300)
  assert second.returncode == 2
  line = one_error_line(second.stderr, "pretrain")
  assert f"another run (pid {victim.pid}) is using {tmp_path / 'run'}" in line, line
  assert "--workdir" in line

  victim.send_signal(signal.SIGKILL)
  victim.communicate()
  assert victim.returncode == -signal.SIGKILL
  ckpts = tmp_path / "run" / "checkpoints" / "pretrain"
  left = sorted(os.listdir(ckpts))
  assert "2" in left and "4" not in left, left
  assert any(name.startswith("4.orbax-checkpoint-tmp") for name in left), left   # half-written

  _finish(ref, _popen(_pretrain_cmd(tmp_path / "run", tiny_overrides, *args)))
  _assert_same(_params(tmp_path / "ref", 8), _params(tmp_path / "run", 8))
  assert not (tmp_path / "run" / "checkpoints" / "pretrain.corrupt").exists()


@pytest.fixture(scope="module")
def tok_world(tmp_path_factory):
  """A tiny built shapes world, and beside it one with a (random) teacher checkpoint."""
  from flax import nnx
  from tokenizer.conftest import TINY_TOK
  from arm_jax.data.build import build_data
  from arm_jax.tokenizer import train_teacher, weights
  overrides = TINY_TOK + ["--config.data.num_train=24", "--config.data.num_validation=8",
                          "--config.data.num_test=8"]
  cfg = load_config("shapes_tiny", overrides)
  world = tmp_path_factory.mktemp("world")
  build_data(cfg, str(world / "data"))
  teacher = tmp_path_factory.mktemp("teacher")
  shutil.copytree(world / "data", teacher / "data")
  model = train_teacher.teacher_fn(cfg)(nnx.Rngs(0))
  weights.save_params(str(teacher), train_teacher.STAGE, nnx.to_pure_dict(nnx.state(model)))
  return types.SimpleNamespace(world=world, teacher=teacher, overrides=overrides)


@pytest.mark.parametrize("stage", ["teacher", "tokenizer"])
def test_kill9_mid_step_and_mid_save_resume_bit_identical(stage, tok_world, tmp_path):
  """One kill -9 lands mid-step (step 5: its batch drawn, the update not applied) while step 4's
  save is half-written; the rerun resumes from step 2 and ends bit-identical to a run never
  killed: params, optimizer state, RNG, step and data position (the teacher's final centring
  reads batches after the last step, so a wrong data position shows in its params too)."""
  src = tok_world.world if stage == "teacher" else tok_world.teacher
  for name in ("ref", "run"):
    shutil.copytree(src, tmp_path / name)
  extra = [f"--config.{stage}.steps=6", "--config.train.async_ckpt=true",
           "--config.train.ckpt_every=2", "--config.train.log_every=2"]
  if stage == "tokenizer":   # the pixel loss alone: less to trace in each of three processes
    extra += [f"--config.tokenizer.{w}=0.0" for w in ("w_feature", "w_sigmoid", "w_caption")]
  command = {"teacher": ["train-teacher"], "tokenizer": ["train-tokenizer", "--skip-metrics"]}
  cmd = lambda workdir: command[stage] + ["--workdir", workdir] + tok_world.overrides + extra
  ref = _popen(_hanging(cmd(tmp_path / "ref")))
  _finish(ref, _killed_at(cmd(tmp_path / "run"), tmp_path, HANG_AT_STEP="5",
                          HANG_IN_SAVE=f"{stage}/4"))
  ckpts = [tmp_path / name / "checkpoints" / stage for name in ("ref", "run")]
  _assert_same_step(*(c / "6" for c in ckpts))
  assert not os.path.exists(str(ckpts[1]) + ".corrupt")


# The tiny GRPO schedule the RL kill test runs in child processes (as tests/rl/test_rl_loop.py).
RL_TINY = [
    "--config.model.d_model=32", "--config.model.n_layers=1", "--config.model.n_heads=2",
    "--config.model.n_kv_heads=1", "--config.model.head_dim=16", "--config.model.d_ff=64",
    "--config.model.dtype='float32'", "--config.data.image_size=32", "--config.data.grid=2",
    "--config.data.max_objects=2", "--config.rl.group_size=2", "--config.rl.prompts_per_step=2",
    "--config.rl.lr=1e-3", "--config.decode.length_buckets=(48,)", "--config.rl.ckpt_every=1",
    "--config.mesh.shape=(1,1,1)"]
RL_STAGES = (("t2i", 3), ("edit", 3))


def run_rl(workdir, overrides=tuple(RL_TINY), stages=RL_STAGES, from_pretrain=False):
  """GRPO stages from a fixed random policy (or the workdir's pretrained one), with the prompt
  source of tests/rl; logs each iteration's prompts (pid, key, CRC) to <workdir>/prompts.jsonl so
  runs can be compared prompt by prompt. A SIGTERM saves and returns, as the CLI does."""
  from arm_jax import sharding as shd
  from arm_jax.errors import Preempted
  from arm_jax.rl import loop, schedule
  from arm_jax.rl.codec import PatchColorCodec
  from arm_jax.rl.prompts import PromptSource
  from arm_jax.rl.stages import pretrained_params
  cfg = load_config("shapes_tiny", list(overrides))
  codec = PatchColorCodec.from_config(cfg)
  word_ids = lambda text: [zlib.crc32(w.encode()) % 500 for w in text.split()]
  source = PromptSource(cfg, ModelConfig.from_config(cfg.model).vocab, word_ids, codec.encode)
  os.makedirs(workdir, exist_ok=True)
  log, draw = open(os.path.join(workdir, "prompts.jsonl"), "a"), source.batch

  def logged(task, n, key):
    prompts = draw(task, n, key)
    crc = zlib.crc32(b"".join(np.asarray(p.ids, np.int32).tobytes() for p in prompts))
    log.write(json.dumps({"pid": os.getpid(), "key": [task] + [int(k) for k in key],
                          "crc": crc}) + "\n")
    log.flush()
    return prompts
  source.batch = logged
  side = cfg.data.image_size // cfg.tokenizer.patch_size
  mesh, rules = shd.make_mesh(cfg.mesh), shd.rules_of(cfg.mesh)
  ctx = loop.RLContext(cfg, mesh, rules, codec, source, (side, side), log=lambda s: None)
  init = (pretrained_params(cfg, workdir, mesh, rules) if from_pretrain else
          loop.policy_state(ctx, 3)[0]["params"])
  try:
    loop.run_schedule(ctx, schedule.parse_stages(stages), workdir, init)
  except Preempted as e:
    print(e, file=sys.stderr)


def _prompt_log(workdir):
  with open(os.path.join(workdir, "prompts.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_kill9_rl_mid_step_and_mid_save_resume_bit_identical(tmp_path):
  """Killed in the second stage between the two GRPO updates of iteration 3 (mu = 2) while
  iteration 2's save is half-written: the rerun skips the finished first stage, resumes the
  second from iteration 1 and ends bit-identical, with the same prompts at every iteration."""
  ref = _popen(_hanging(["rl-tiny", tmp_path / "ref"]))
  _finish(ref, _killed_at(["rl-tiny", tmp_path / "run"], tmp_path, HANG_AT_STEP="12",
                          HANG_IN_SAVE="rl_2_edit/2"))
  from arm_jax.rl.schedule import parse_stages
  for plan in parse_stages(RL_STAGES):
    _assert_same_step(*(tmp_path / name / "checkpoints" / plan.name / str(plan.steps)
                        for name in ("ref", "run")))
  want = [(tuple(r["key"]), r["crc"]) for r in _prompt_log(tmp_path / "ref")]
  runs = _prompt_log(tmp_path / "run")
  got = [(tuple(r["key"]), r["crc"]) for r in runs]
  last = [(tuple(r["key"]), r["crc"]) for r in runs if r["pid"] == runs[-1]["pid"]]
  assert set(got) == set(want) and len({r["pid"] for r in runs}) == 2
  assert 0 < len(last) < len(want) and last == want[-len(last):]


# --- disk full on save ----------------------------------------------------------------------------

def _state(step):
  rng = np.random.default_rng(step)
  return {"params": {"w": rng.standard_normal((256, 256)).astype(np.float32),
                     "b": rng.standard_normal((256,)).astype(np.float32)},
          "step": np.int32(step), "rng": jax.random.key_data(jax.random.key(step))}


def _abstract(state):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)


def _save_until_full(directory, fill, *, async_save, last_step):
  """Saves step 2, calls fill(), then saves 4..last_step the way the train loop does (close()
  in a finally). Returns the CheckpointError's message, or None if every save succeeded."""
  ckpt = Checkpoints(directory, async_save=async_save)
  ckpt.save(2, _state(2), meta={"stage": "test"}, force=True)
  ckpt.wait()
  fill()
  try:
    try:
      for step in range(4, last_step + 1, 2):
        ckpt.save(step, _state(step), meta={"stage": "test"}, force=True)
    finally:
      ckpt.close()
  except CheckpointError as e:
    assert isinstance(e, UserError)
    return str(e)
  return None


def _restores_step_2_then_saves(directory):
  """The previous checkpoint restores bit-identically, and with space again the failed step
  itself saves in this same process (writes of the failed attempt may still be in flight)."""
  ckpt = Checkpoints(directory, async_save=False)
  state, step, meta = ckpt.restore(_abstract(_state(2)))
  assert step == 2 and meta == {"stage": "test"}
  _assert_same(state, _state(2))
  ckpt.save(4, _state(4), force=True)
  ckpt.close()
  assert ckpt.manager.all_steps() == [2, 4]
  _assert_same(Checkpoints(directory).restore(_abstract(_state(4)))[0], _state(4))
  assert not os.path.exists(directory + ".corrupt")


def _disk_full_for_step_4(monkeypatch):
  """Every Python-side orbax write into step 4's temporary directory fails with ENOSPC."""
  path_class = type(epath.Path("/"))
  write_text = path_class.write_text

  def disk_full(self, *args, **kwargs):
    if re.search(r"/4\.orbax-checkpoint-tmp", str(self)):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
    return write_text(self, *args, **kwargs)

  monkeypatch.setattr(path_class, "write_text", disk_full)


def _check_disk_full_message(msg):
  assert msg is not None and "\n" not in msg, msg
  # An async failure surfaces at a later save or at close(); it still names the failed step.
  assert "saving checkpoint step 4 in " in msg and "(disk full)" in msg, msg
  assert "the checkpoint at step 2 is intact" in msg and "free space" in msg, msg


@pytest.mark.parametrize("async_save, last_step", [(True, 4), (False, 4), (True, 6)],
                         ids=["async-found-at-close", "sync", "async-found-at-next-save"])
def test_disk_full_on_save_keeps_previous_checkpoint(tmp_path, monkeypatch, async_save,
                                                     last_step):
  directory = str(tmp_path / "ckpt")
  msg = _save_until_full(directory, lambda: _disk_full_for_step_4(monkeypatch),
                         async_save=async_save, last_step=last_step)
  monkeypatch.undo()
  _check_disk_full_message(msg)
  _restores_step_2_then_saves(directory)


def test_disk_full_while_training_stops_in_one_line_and_resumes(tmp_path, tiny_overrides,
                                                               monkeypatch):
  cfg = load_config("shapes_tiny", tiny_overrides + ONE_DEVICE + [
      "--config.train.steps=6", "--config.train.ckpt_every=2"])
  _disk_full_for_step_4(monkeypatch)
  with pytest.raises(CheckpointError) as e:
    pretrain(cfg, str(tmp_path))
  monkeypatch.undo()
  _check_disk_full_message(str(e.value))
  assert sorted(s for s in os.listdir(tmp_path / "checkpoints" / "pretrain") if s.isdigit()) \
      == ["2"]
  for leaf in jax.tree.leaves(_params(tmp_path, 2)):
    assert np.isfinite(leaf).all()
  # The lock was released, so the run resumes in this process and saves step 4 this time.
  state, _ = pretrain(cfg, str(tmp_path))
  assert int(state["step"]) == 6
  assert {"2", "4", "6"} <= set(os.listdir(tmp_path / "checkpoints" / "pretrain"))


def test_retried_save_is_out_of_reach_of_the_failed_attempts_late_writes(tmp_path, monkeypatch):
  """Orbax reports a failed save's first error without joining its other writes. One of them
  landing while the same step is retried in this process (tensorstore creates the directories
  it writes into) must not reach the retry: it used to recreate directories under the name the
  retry was writing ("File exists") or leave its file inside the saved step."""
  directory = str(tmp_path / "ckpt")
  ckpt = Checkpoints(directory, async_save=False)
  ckpt.save(2, _state(2), meta={"stage": "test"}, force=True)
  path_class = type(epath.Path("/"))
  write_text = path_class.write_text
  in_step_4 = re.compile(r"/4\.orbax-checkpoint-tmp[^/]*/")
  retrying, landed, late = threading.Event(), threading.Event(), []

  def land_late(step_tmp):   # a data write of the failed attempt, once the retry is under way
    retrying.wait(60)
    path = os.path.join(step_tmp, "state.orbax-checkpoint-tmp", "ocdbt.process_0", "d")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "written.late"), "w") as f:
      f.write("a write of the failed attempt")
    landed.set()

  def failing(self, *args, **kwargs):
    found = in_step_4.search(str(self))
    if found:
      if not late:
        step_tmp = str(self)[:found.end() - 1]
        late.append(threading.Thread(target=land_late, args=(step_tmp,), daemon=True))
        late[0].start()
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
    return write_text(self, *args, **kwargs)

  def retrying_write(self, *args, **kwargs):   # holds the retry's first write of its arrays
    if in_step_4.search(str(self)) and "/state" in str(self) and not retrying.is_set():
      retrying.set()
      assert landed.wait(60)
    return write_text(self, *args, **kwargs)

  monkeypatch.setattr(path_class, "write_text", failing)
  with pytest.raises(CheckpointError, match="disk full"):
    ckpt.save(4, _state(4), meta={"stage": "test"}, force=True)
  monkeypatch.setattr(path_class, "write_text", retrying_write)
  ckpt.save(4, _state(4), meta={"stage": "test"}, force=True)   # the same step, same process
  ckpt.close()
  assert landed.is_set() and ckpt.manager.all_steps() == [2, 4]
  stray = [f for _, _, files in os.walk(os.path.join(directory, "4")) for f in files
           if f.endswith(".late")]
  assert not stray, stray
  _assert_same(Checkpoints(directory).restore(_abstract(_state(4)))[0], _state(4))


# A real full filesystem: tensorstore reports ENOSPC as a ValueError naming os_error_code 28,
# not as an OSError. Needs a private tmpfs (a user or mount namespace); skipped where refused.
_ON_A_FULL_TMPFS = textwrap.dedent(r"""
  import json, os, sys
  sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
  import test_fault_matrix as t
  root = sys.argv[1]
  directory = os.path.join(root, "ckpt")
  filler = os.path.join(root, "filler")

  def fill():
    st = os.statvfs(root)
    with open(filler, "wb") as f:
      f.write(b"\0" * (st.f_bavail * st.f_frsize - 64 * 1024))

  msg = t._save_until_full(directory, fill, async_save=True, last_step=4)
  os.remove(filler)
  t._restores_step_2_then_saves(directory)
  print("MESSAGE " + json.dumps(msg))
""")


def test_disk_full_on_a_tiny_tmpfs(tmp_path):
  mnt = tmp_path / "small_fs"
  mnt.mkdir()
  if shutil.which("unshare") is None:
    pytest.skip("no unshare(1) to make a private tmpfs")
  q = shlex.quote
  probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m none "
                          f"{q(str(mnt))}"], capture_output=True, text=True)
  if probe.returncode != 0:
    pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.strip()[:200]}")
  # The mount lives in the namespace of this one process and goes away with it.
  script = (f"mount -t tmpfs -o size=2m none {q(str(mnt))} && "
            f"exec {q(sys.executable)} -c \"$0\" {q(str(mnt))}")
  proc = subprocess.run(["unshare", "-rm", "sh", "-c", script, _ON_A_FULL_TMPFS], cwd=REPO,
                        env=ENV, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  _check_disk_full_message(json.loads(proc.stdout.split("MESSAGE ", 1)[1]))


# --- silent corruption: a flipped byte -----------------------------------------------------------

def _file_kind(rel, largest_data_file):
  """What a file of a step holds, by where orbax puts it (0.12: one OCDBT database per item)."""
  if rel == largest_data_file:
    return "array chunks"
  if os.path.basename(rel) in ("commit_success.txt", "_CHECKPOINT_METADATA"):
    return "commit markers"
  for prefix, kind in [("state/manifest.ocdbt", "OCDBT manifest"), ("state/d/", "OCDBT b-tree"),
                       ("state/ocdbt.process_", "per-process OCDBT index"),
                       ("state/_METADATA", "tree metadata"), ("state/_sharding", "shardings"),
                       ("state/array_metadatas/", "array metadata"), ("data/", "data position"),
                       ("meta/metadata", "meta"), ("checksums/metadata", "checksums")]:
    if rel.startswith(prefix):
      return kind
  return rel   # a kind this table does not know yet: the test names it


def _flip_middle_byte(path):
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    data[len(data) // 2] ^= 0x01
    f.seek(0)
    f.write(data)


def test_a_flipped_byte_in_any_checkpoint_file_is_caught_or_never_read(tmp_path, caplog):
  """One byte flipped in one file of the newest step, for every file it has: the step is moved
  to <dir>.corrupt/ with a one-line warning and the previous one restored bit-identically
  (arrays and data position), or, where restore never reads that byte, the step itself restores
  bit-identically. Never silently different values. Array chunks carry no checksum of orbax's
  own (tensorstore's CRC-32C covers the OCDBT manifest and b-tree only): ours catches them."""
  src = str(tmp_path / "src")
  ckpt = Checkpoints(src, async_save=False)
  data = iter(grain.MapDataset.range(100).batch(2))
  position = {}
  for step in (2, 4):
    next(data)
    ckpt.save(step, _state(step), data, meta={"stage": "test"}, force=True)
    position[step] = data.get_state()
  ckpt.close()
  files = sorted(os.path.relpath(os.path.join(root, f), os.path.join(src, "4"))
                 for root, _, names in os.walk(os.path.join(src, "4")) for f in names)
  chunks = max((f for f in files if re.match(r"state/ocdbt\.process_\d+/d/", f)),
               key=lambda f: os.path.getsize(os.path.join(src, "4", f)))
  caught, read_never = set(), set()
  for i, rel in enumerate(files):
    directory = str(tmp_path / f"flip_{i}")   # a new path: tensorstore caches reads by path
    shutil.copytree(src, directory)
    _flip_middle_byte(os.path.join(directory, "4", rel))
    caplog.clear()
    data = iter(grain.MapDataset.range(100).batch(2))
    state, step, meta = Checkpoints(directory, async_save=False).restore(
        _abstract(_state(4)), data)
    _assert_same(state, _state(step))
    assert data.get_state() == position[step] and meta == {"stage": "test"}, rel
    kind = _file_kind(rel, chunks)
    if step == 2:
      caught.add(kind)
      assert os.path.isdir(os.path.join(directory + ".corrupt", "4")), rel
      moved = [r.getMessage() for r in caplog.records if "moved to" in r.getMessage()]
      assert len(moved) == 1 and "\n" not in moved[0], moved
      assert moved[0].startswith("checkpoint step 4 "), moved[0]
    else:
      read_never.add(kind)
  assert {"array chunks", "OCDBT manifest", "OCDBT b-tree", "tree metadata", "shardings",
          "array metadata", "data position", "meta", "checksums"} <= caught, (caught, read_never)
  # Bytes no restore reads: the per-process index the merged root replaced, commit markers.
  assert read_never <= {"per-process OCDBT index", "commit markers"}, read_never
