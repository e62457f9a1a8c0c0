"""The inference API and the generate / edit / ask commands, with stand-in tokenizers."""
import os

import numpy as np
import pytest
from decode_helpers import TINY, CharTokenizer, PatchColorCodec

from arm_jax import cli
from arm_jax.decode import loading
from arm_jax.decode.api import ArmModel
from arm_jax.decode.compiled import CompiledSampler
from arm_jax.decode.images import load_image, save_png
from arm_jax.errors import UserError


@pytest.fixture(scope="module")
def arm(tiny):
  return ArmModel(CompiledSampler(tiny.graphdef, tiny.params, tiny.config),
                  CharTokenizer(tiny.vocab.text_size), PatchColorCodec(tiny.config), tiny.config)


def _image(seed=0):
  return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), np.uint8)


def test_generate_is_deterministic_prompt_major_and_batch_independent(arm):
  images = arm.generate(["a red circle", "two squares"], seed=3, n=2)
  assert len(images) == 4 and all(im.shape == (64, 64, 3) and im.dtype == np.uint8
                                  for im in images)
  again = arm.generate("a red circle", seed=3, n=2)   # the same samples, without prompt 2
  np.testing.assert_array_equal(np.stack(again), np.stack(images[:2]))
  other = arm.generate("a red circle", seed=4, n=2)
  assert not np.array_equal(np.stack(other), np.stack(images[:2]))


def test_edit_single_and_batched(arm):
  one = arm.edit(_image(0), "make it green", seed=1)
  assert one.shape == (64, 64, 3) and one.dtype == np.uint8
  both = arm.edit([_image(0), _image(1)], ["make it green", "remove the square"], seed=1)
  assert len(both) == 2
  np.testing.assert_array_equal(both[0], one)


def test_answer_and_understand(arm):
  answers = arm.answer([_image(0), _image(1)], ["what colour?", "how many?"])
  assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
  assert arm.understand(_image(0), "what colour?") == answers[0]   # greedy by default


@pytest.mark.parametrize("prompt, match", [
    ("", "empty"), ("   ", "empty"), ("x" * 10_000, "10000 characters"),
    (b"\xff\xfe caption", "not valid UTF-8"), ("caf\udce9", "not valid UTF-8"),
    (42, "pass a string"),
])
def test_bad_prompts_are_one_line_errors(arm, prompt, match):
  with pytest.raises(UserError, match=match) as e:
    arm.generate(prompt)
  assert "\n" not in str(e.value)


def test_bad_images_are_one_line_errors(arm, tmp_path):
  cases = [(np.zeros((64, 64), np.uint8), "shape"), (np.zeros((64, 64, 4), np.uint8), "shape"),
           (np.zeros((64, 64, 3), np.float32), "float32")]
  for image, match in cases:
    with pytest.raises(UserError, match=match):
      arm.edit(image, "make it green")
  with pytest.raises(UserError, match="1 images for 2 instructions"):
    arm.edit([_image()], ["a", "b"])


def test_a_prompt_longer_than_the_cache_is_a_clear_error(arm):
  # 1 + 1900 + 3 tokens do not fit a 96-slot cache; the character limit (2000) is not hit
  with pytest.raises(UserError, match="KV cache"):
    arm.generate("y" * 1900)


def test_image_files_are_checked(tmp_path):
  from PIL import Image
  good = save_png(str(tmp_path / "good.png"), _image())
  np.testing.assert_array_equal(load_image(good), _image())
  data = open(good, "rb").read()
  (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
  Image.fromarray(_image()[..., 0]).save(tmp_path / "gray.png")
  Image.fromarray(np.dstack([_image(), _image()[..., :1]])).save(tmp_path / "rgba.png")
  (tmp_path / "notes.png").write_text("not an image")
  for name, match in [("cut.png", "truncated or corrupt"), ("gray.png", "mode 'L'"),
                      ("rgba.png", "mode 'RGBA'"), ("notes.png", "not an image"),
                      ("missing.png", "does not exist")]:
    with pytest.raises(UserError, match=match) as e:
      load_image(str(tmp_path / name))
    assert "\n" not in str(e.value)


# --- checkpoints and the commands --------------------------------------------------------------

def _save(workdir, stage, step, params, config):
  from arm_jax.train.checkpoint import Checkpoints
  ckpt = Checkpoints(os.path.join(workdir, "checkpoints", stage), async_save=False)
  state = {"params": params, "step": np.int32(step)}
  ckpt.save(step, state, meta={"stage": stage, "config": config.to_json()}, force=True)
  ckpt.close()


@pytest.fixture(scope="module")
def workdir(tiny, tmp_path_factory):
  d = str(tmp_path_factory.mktemp("run"))
  _save(d, "pretrain", 3, tiny.params, tiny.config)
  _save(d, "tokenizer", 9, {"encoder": {"w": np.ones((2, 2), np.float32)}}, tiny.config)
  return d


@pytest.fixture
def stand_ins(monkeypatch, tiny):
  monkeypatch.setattr(loading, "load_text_tokenizer",
                      lambda config, workdir: CharTokenizer(tiny.vocab.text_size))
  monkeypatch.setattr(loading, "load_codec", lambda config, workdir: PatchColorCodec(config))


def test_decoder_steps_are_found_among_other_stages(workdir, tiny):
  step = loading.find_decoder_step(workdir)   # the tokenizer step is newer but not a decoder
  assert step.endswith(os.path.join("pretrain", "3"))
  with pytest.raises(UserError, match="not a decoder checkpoint"):
    loading.find_decoder_step(workdir, os.path.join(workdir, "checkpoints", "tokenizer"))
  with pytest.raises(UserError, match="no decoder checkpoint"):
    loading.find_decoder_step(os.path.join(workdir, "elsewhere"))


def test_checkpoint_gives_the_network_and_the_caller_gives_the_sampling(workdir, tiny):
  from arm_jax.config import load_config
  given = load_config("shapes_tiny", TINY + ["--config.decode.cfg_scale=3.0",
                                             "--config.model.max_seq_len=64"])
  config, _, params = loading.load_decoder(given, loading.find_decoder_step(workdir))
  assert config.decode.cfg_scale == 3.0                 # the caller's sampling setting
  assert config.model.max_seq_len == tiny.config.model.max_seq_len == 96   # the run's network
  np.testing.assert_array_equal(np.asarray(params["image_head"]["kernel"]),
                                np.asarray(tiny.params["image_head"]["kernel"]))


def _cli(tiny, *argv):
  return cli.main(list(argv) + TINY)


def test_commands_write_pngs_and_print_answers(workdir, stand_ins, tiny, arm, capsys, tmp_path):
  out = str(tmp_path / "samples")
  assert _cli(tiny, "generate", "--workdir", workdir, "--prompt", "a red circle", "--n", "2",
              "--seed", "3", "--out", out) == 0
  paths = capsys.readouterr().out.split()
  assert len(paths) == 2
  # The checkpoint holds the same weights, so the command reproduces the API's samples.
  np.testing.assert_array_equal(np.stack([load_image(p) for p in paths]),
                                np.stack(arm.generate("a red circle", seed=3, n=2)))
  src = save_png(str(tmp_path / "in.png"), _image())
  assert _cli(tiny, "edit", "--workdir", workdir, "--image", src, "--instruction",
              "make it green", "--seed", "1") == 0
  edited = capsys.readouterr().out.strip()
  assert edited == os.path.join(workdir, "edits", "in_edited.png")
  np.testing.assert_array_equal(load_image(edited), arm.edit(_image(), "make it green", seed=1))
  assert _cli(tiny, "ask", "--workdir", workdir, "--image", src, "--question",
              "what colour?") == 0
  assert capsys.readouterr().out.strip() == arm.understand(_image(), "what colour?")


def test_commands_report_bad_input_in_one_line(workdir, stand_ins, tiny, capsys, tmp_path):
  (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
  assert _cli(tiny, "ask", "--workdir", workdir, "--image", str(tmp_path / "cut.png"),
              "--question", "what?") == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("arm-jax ask: error:") and "\n" not in err
  assert _cli(tiny, "generate", "--workdir", workdir, "--prompt", "  ") == 2
  assert "empty" in capsys.readouterr().err
