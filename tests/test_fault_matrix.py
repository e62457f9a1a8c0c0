"""The fault matrix: each fault a user or the machine can cause, what must happen, and the tests
that pin it down (here unless a file is named: L = tests/train/test_loop.py,
A = tests/decode/test_api.py, F = tests/data/test_folder.py,
M = tests/scale/test_multihost_train.py).

kill -9 during training -> the rerun reaches bit-identical final params
  L test_kill9_resume_is_bit_identical
kill -9 during a checkpoint save -> the half-written step is ignored, bit-identical final params
  test_kill9_during_checkpoint_save_resumes_bit_identical
SIGTERM -> checkpoint saved, exit 0, the rerun resumes
  L test_sigterm_saves_checkpoint_and_exits_0;
  M test_two_processes_stop_resume_and_match_one_process (SIGTERM to one host of two)
corrupt latest checkpoint -> the previous one is restored with a warning; the corrupt step is
moved to <dir>.corrupt/, not deleted (all corrupt: a one-line error)
  L test_corrupt_latest_falls_back_to_previous, test_all_checkpoints_corrupt_is_one_line_error
  (a checkpoint of another config is a one-line error, nothing moved:
  L test_shape_mismatch_is_a_user_error_not_corruption)
two runs on one workdir -> the second exits 2 with one line naming the first's pid
  test_kill9_during_checkpoint_save_resumes_bit_identical (a second CLI run while the first
  holds the workdir); L test_second_run_on_same_workdir_refuses
NaN/Inf loss -> updates skipped, then a one-line halt; no checkpoint holds a poisoned update
  L test_nan_loss_skips_updates_then_halts
prompt empty / 10k characters / invalid UTF-8, for generate, edit and ask -> one-line PromptError;
CLI exit 2 with one line, no traceback, before any checkpoint is loaded
  generate (API): A test_bad_prompts_are_one_line_errors
  edit, ask (API): test_bad_instructions_and_questions_are_one_line_errors
  CLI: test_bad_prompt_on_the_command_line_is_one_line, test_cli_reports_bad_input_without_traceback
image truncated or corrupt (PNG, JPEG) -> one-line ImageError
  A test_image_files_are_checked, test_commands_report_bad_input_in_one_line;
  test_bad_image_files_are_one_line_errors, test_cli_reports_bad_input_without_traceback
image of the wrong mode (16-bit, palette, CMYK, 2-channel LA; A: L, RGBA) -> one-line ImageError
naming the mode (16-bit: rescale, since convert('RGB') would clip)
  test_bad_image_files_are_one_line_errors, test_bad_image_on_the_command_line_is_one_line
image of the wrong size or shape (too large to decode safely, empty, 2 channels, uint16 array)
  test_bad_image_files_are_one_line_errors[bomb.png], test_bad_image_arrays_are_one_line_errors;
  A test_bad_images_are_one_line_errors (2-D, 4 channels, float)
folder import (build-data --from) -> 16-bit grayscale scaled to 8 bits; 32-bit and oversized
images skipped with a reason; too small skipped
  test_folder_import_high_bit_depth_and_oversized_images; F test_import_converts_skips_and_indexes
disk full on save -> one-line CheckpointError naming the failed step (also when an async save
fails and it surfaces at the next save), the previous checkpoint intact, restorable, resumable
  test_disk_full_on_save_keeps_previous_checkpoint (injected ENOSPC, sync and async),
  test_disk_full_while_training_stops_in_one_line_and_resumes (the train loop),
  test_disk_full_on_a_tiny_tmpfs (a real full filesystem; skipped where no private mount)
disk full on a metrics write -> one-line MetricsWriteError naming the step and file; the rows
already written stay readable and a rerun appends after them
  tests/train/test_metrics_log.py test_disk_full_on_metrics_write_is_one_line_and_earlier_rows_survive

Training runs use the tiny f32 decoder of the other train tests on one device, a few steps each.
"""
import errno
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import types
import zlib

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from etils import epath
from PIL import Image

from arm_jax import cli
from arm_jax.config import load_config
from arm_jax.data import folder
from arm_jax.data.shapes_examples import WorldParams
from arm_jax.decode.api import ArmModel, PromptError
from arm_jax.decode.images import ImageError, load_image, save_png
from arm_jax.errors import UserError
from arm_jax.model.transformer import ModelConfig
from arm_jax.train.checkpoint import CheckpointError, Checkpoints
from arm_jax.train.pretrain import pretrain

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE_DEVICE = ["--config.mesh.shape=(1,1,1)"]
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


def _one_error_line(err: str, command: str) -> str:
  assert "Traceback" not in err, err[-3000:]
  lines = [line for line in err.splitlines() if line.strip()]
  assert len(lines) == 1, err[-3000:]
  assert lines[0].startswith(f"arm-jax {command}: error: "), lines[0]
  return lines[0]


# --- kill -9 during a checkpoint save -------------------------------------------------------------

# Runs the CLI with orbax's Python-side writes patched: the first write into the state item of
# step BLOCK_STEP's temporary directory drops a marker and then hangs, so the kill lands while
# that save is half-written (arrays and metadata of the step in flight, not yet renamed).
_HANG_IN_SAVE = textwrap.dedent(r"""
  import os, re, sys, time
  from etils import epath
  in_step = re.compile(r"/%s\.orbax-checkpoint-tmp[^/]*/state" % os.environ["BLOCK_STEP"])
  cls = type(epath.Path("/"))
  write_text = cls.write_text
  def hanging_write_text(self, *args, **kwargs):
    n = write_text(self, *args, **kwargs)
    if in_step.search(str(self)):
      open(os.environ["BLOCK_MARKER"], "w").close()
      time.sleep(3600)
    return n
  cls.write_text = hanging_write_text
  from arm_jax import cli
  sys.exit(cli.main(sys.argv[1:]))
""")


def test_kill9_during_checkpoint_save_resumes_bit_identical(tmp_path, tiny_overrides):
  args = ["--config.train.steps=8", "--config.train.ckpt_every=2"]
  marker = tmp_path / "saving"
  ref = _popen(_pretrain_cmd(tmp_path / "ref", tiny_overrides, *args))
  victim = _popen(_pretrain_cmd(tmp_path / "run", tiny_overrides, *args,
                                python=("-c", _HANG_IN_SAVE)),
                  BLOCK_STEP="4", BLOCK_MARKER=str(marker))
  _wait_for(marker, victim, "the victim run reaching the save of step 4")

  # Two runs on one workdir: while the victim still holds it, a second run refuses at once.
  second = subprocess.run(_pretrain_cmd(tmp_path / "run", tiny_overrides, *args), cwd=REPO,
                          env=ENV, capture_output=True, text=True, timeout=300)
  assert second.returncode == 2
  line = _one_error_line(second.stderr, "pretrain")
  assert f"another run (pid {victim.pid}) is using {tmp_path / 'run'}" in line, line
  assert "--workdir" in line

  victim.send_signal(signal.SIGKILL)
  victim.communicate()
  assert victim.returncode == -signal.SIGKILL
  ckpts = tmp_path / "run" / "checkpoints" / "pretrain"
  left = sorted(os.listdir(ckpts))
  assert "2" in left and "4" not in left, left
  assert any(name.startswith("4.orbax-checkpoint-tmp") for name in left), left   # half-written

  resumed = _popen(_pretrain_cmd(tmp_path / "run", tiny_overrides, *args))
  for p in (ref, resumed):
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
  _assert_same(_params(tmp_path / "ref", 8), _params(tmp_path / "run", 8))
  assert not (tmp_path / "run" / "checkpoints" / "pretrain.corrupt").exists()


# --- disk full on save ----------------------------------------------------------------------------

def _state(step):
  rng = np.random.default_rng(step)
  return {"params": {"w": rng.standard_normal((256, 256)).astype(np.float32),
                     "b": rng.standard_normal((256,)).astype(np.float32)},
          "step": np.int32(step)}


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
  """The previous checkpoint restores bit-identically, and with space again saving goes on."""
  ckpt = Checkpoints(directory, async_save=False)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _state(2))
  state, step, meta = ckpt.restore(abstract)
  assert step == 2 and meta == {"stage": "test"}
  _assert_same(state, _state(2))
  # Step 6, not 4: writes of the failed save still in flight in this process may recreate
  # step 4's temporary directory (a rerun in a new process starts clean).
  ckpt.save(6, _state(6), force=True)
  ckpt.close()
  assert ckpt.manager.all_steps() == [2, 6]
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
  # The lock was released, so the run resumes in this process. It saves at 3 and 6, not 4:
  # writes of the failed save may still land in step 4's temporary directory here (orbax
  # reports the first failure without joining the rest); a real rerun is a new process.
  cfg = load_config("shapes_tiny", tiny_overrides + ONE_DEVICE + [
      "--config.train.steps=6", "--config.train.ckpt_every=3"])
  state, _ = pretrain(cfg, str(tmp_path))
  assert int(state["step"]) == 6


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


# --- malformed prompts ----------------------------------------------------------------------------

BAD_TEXT = [("", "is empty"), ("x" * 10_000, "is 10000 characters; the limit is 2000"),
            ("caf\udce9", "not valid UTF-8"),   # what Python makes of invalid argv bytes
            (b"\xff\xfe caption", "not valid UTF-8")]


@pytest.fixture(scope="module")
def stub_model():
  """An ArmModel whose sampler and codec are never reached: input checks come first."""
  cfg = load_config("shapes_tiny", ONE_DEVICE)
  vocab = ModelConfig.from_config(cfg.model).vocab
  text = types.SimpleNamespace(vocab_size=vocab.text_size, encode=lambda s: [1] * len(s))
  return ArmModel(types.SimpleNamespace(vocab=vocab), text, codec=None, config=cfg)


def _rgb(size=64):
  return np.random.default_rng(0).integers(0, 256, (size, size, 3), np.uint8)


@pytest.mark.parametrize("text, match", BAD_TEXT, ids=["empty", "10k", "surrogate", "bytes"])
def test_bad_instructions_and_questions_are_one_line_errors(stub_model, text, match):
  for call in (lambda: stub_model.edit(_rgb(), text),
               lambda: stub_model.understand(_rgb(), text)):
    with pytest.raises(PromptError, match=match) as e:
      call()
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)


@pytest.fixture(scope="module")
def png(tmp_path_factory):
  return save_png(str(tmp_path_factory.mktemp("img") / "in.png"), _rgb())


def _command(name, text, image):
  flag = {"generate": "--prompt", "edit": "--instruction", "ask": "--question"}[name]
  return [name, "--workdir", os.path.dirname(image), flag, text] + \
      ([] if name == "generate" else ["--image", image])


@pytest.mark.parametrize("command", ["generate", "edit", "ask"])
@pytest.mark.parametrize("text, match", BAD_TEXT[:3], ids=["empty", "10k", "invalid-utf8"])
def test_bad_prompt_on_the_command_line_is_one_line(command, text, match, png, capsys):
  # No checkpoint in the workdir: the text is refused before any model is loaded.
  assert cli.main(_command(command, text, png) + ONE_DEVICE) == 2
  line = _one_error_line(capsys.readouterr().err, command)
  assert match in line


# --- malformed images -----------------------------------------------------------------------------

def _png_claiming(width, height):
  """A PNG whose header claims width x height (PIL refuses it from the header alone)."""
  def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
  header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
          chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bad_images(tmp_path_factory):
  d = tmp_path_factory.mktemp("bad_images")
  rgb = _rgb()
  Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(d / "g16.png")
  Image.fromarray(rgb).convert("P").save(d / "pal.png")
  Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
  Image.fromarray(rgb).convert("LA").save(d / "la.png")
  Image.fromarray(rgb).save(d / "ok.jpg")
  jpg = (d / "ok.jpg").read_bytes()
  (d / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
  Image.fromarray(rgb).save(d / "ok.png")
  flipped = bytearray((d / "ok.png").read_bytes())
  flipped[60:200] = bytes(b ^ 0x55 for b in flipped[60:200])   # inside the pixel data
  (d / "flipped.png").write_bytes(bytes(flipped))
  (d / "bomb.png").write_bytes(_png_claiming(30_000, 30_000))
  return d


IMAGE_CASES = [("g16.png", "mode 'I;16' image (more than 8 bits per pixel)"),
               ("pal.png", "mode 'P' image"), ("cmyk.jpg", "mode 'CMYK' image"),
               ("la.png", "mode 'LA' image"), ("cut.jpg", "truncated or corrupt"),
               ("flipped.png", "truncated or corrupt"), ("bomb.png", "too large to load")]


@pytest.mark.parametrize("name, match", IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_bad_image_files_are_one_line_errors(bad_images, name, match):
  with pytest.raises(ImageError, match=re.escape(match)) as e:
    load_image(str(bad_images / name))
  assert isinstance(e.value, UserError) and "\n" not in str(e.value)


@pytest.mark.parametrize("command, name", [("edit", "g16.png"), ("ask", "cmyk.jpg"),
                                           ("edit", "bomb.png"), ("ask", "la.png")])
def test_bad_image_on_the_command_line_is_one_line(bad_images, command, name, capsys):
  argv = [command, "--workdir", str(bad_images), "--image", str(bad_images / name),
          "--instruction" if command == "edit" else "--question", "make it green"]
  assert cli.main(argv + ONE_DEVICE) == 2
  line = _one_error_line(capsys.readouterr().err, command)
  assert name in line


def test_bad_image_arrays_are_one_line_errors(stub_model):
  cases = [(np.zeros((0, 64, 3), np.uint8), "shape"),
           (np.zeros((64, 64, 3), np.uint16), "uint16"),
           (np.zeros((64, 64, 2), np.uint8), "shape")]
  for image, match in cases:
    for call in (lambda: stub_model.edit(image, "make it green"),
                 lambda: stub_model.understand(image, "what colour?")):
      with pytest.raises(ImageError, match=match) as e:
        call()
      assert "\n" not in str(e.value)


def test_folder_import_high_bit_depth_and_oversized_images(bad_images, tmp_path):
  params = WorldParams(image_size=64, multiple_of=8)
  image = folder.load_image(str(bad_images / "g16.png"), params)
  # the top byte of each 16-bit value, not convert('RGB')'s clipping to white
  want = ((np.arange(64 * 64).reshape(64, 64) * 16) >> 8).astype(np.uint8)
  np.testing.assert_array_equal(image, np.repeat(want[..., None], 3, axis=-1))
  Image.fromarray(np.ones((64, 64), np.float32)).save(tmp_path / "float.tif")
  for name, path, kind in [("bomb", bad_images / "bomb.png", "image too large"),
                           ("float", tmp_path / "float.tif", "unsupported image mode")]:
    with pytest.raises(folder.SkipRow) as e:
      folder.load_image(str(path), params)
    assert e.value.kind == kind, name


# --- the real command line: exit status and no traceback ------------------------------------------

@pytest.mark.parametrize("case", ["bytes-prompt", "truncated-png"])
def test_cli_reports_bad_input_without_traceback(case, bad_images, tmp_path):
  if case == "bytes-prompt":
    argv = ["generate", "--workdir", str(tmp_path), "--prompt", b"\xff\xfe a red circle"]
    command, match = "generate", "not valid UTF-8"
  else:
    cut = tmp_path / "cut.png"
    cut.write_bytes((bad_images / "ok.png").read_bytes()[:100])
    argv = ["ask", "--workdir", str(tmp_path), "--image", str(cut), "--question", "what?"]
    command, match = "ask", "truncated or corrupt"
  cmd = [sys.executable, "-m", "arm_jax.cli"] + argv + ONE_DEVICE
  proc = subprocess.run([os.fsencode(a) for a in cmd], cwd=REPO, env=ENV, capture_output=True,
                        timeout=300)
  assert proc.returncode == 2
  line = _one_error_line(proc.stderr.decode(errors="replace"), command)
  assert match in line
