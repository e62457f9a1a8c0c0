"""Bad input from a user, for the fault matrix (tests/test_fault_matrix.py): malformed prompts and
images, through the API and the real command line, each a one-line error that says what was
wrong (exit 2, no traceback, before any checkpoint is loaded)."""
import os
import re
import struct
import subprocess
import sys
import types
import zlib

import numpy as np
import pytest
from PIL import Image

from arm_jax import cli
from arm_jax.config import load_config
from arm_jax.data import folder
from arm_jax.data.shapes_examples import WorldParams
from arm_jax.decode.api import ArmModel, PromptError
from arm_jax.decode.images import ImageError, load_image, save_png
from arm_jax.errors import UserError
from arm_jax.model.transformer import ModelConfig
from one_line import ONE_DEVICE, one_error_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=REPO)


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
  line = one_error_line(capsys.readouterr().err, command)
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
  line = one_error_line(capsys.readouterr().err, command)
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
  line = one_error_line(proc.stderr.decode(errors="replace"), command)
  assert match in line
