"""Inference with a trained ARM decoder: understanding, text-to-image and editing.

    model = ArmModel.from_checkpoint(config, "runs/demo")          # newest decoder checkpoint
    images = model.generate("a red circle above a blue square", n=4, seed=0)
    edited = model.edit(image, "make the circle green")
    answer = model.understand(image, "how many squares are there?")

It is also the eval suite's model protocol, with batched methods:
    generate(prompts: list[str], seed) -> list[[H, W, 3] uint8]
    edit(images, instructions, seed)   -> list[[H, W, 3] uint8]
    answer(images, questions)          -> list[str]

Prompts follow the training formats (arm_jax/data/formats.py); guidance rows replace the
caption/instruction (and, for editing's image guidance, the source image) with <uncond>, as
condition dropout did in training. Sample i of prompt p draws from key
fold_in(fold_in(key(seed), p), i), so results do not depend on batching.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import jax
import numpy as np

from arm_jax.data import formats
from arm_jax.decode import constraints as cons
from arm_jax.decode.compiled import CompiledSampler
from arm_jax.decode.guidance import kind_for
from arm_jax.decode.images import check_image, fit
from arm_jax.errors import UserError


class TextTokenizer(Protocol):
  vocab_size: int

  def encode(self, text: str) -> list[int]: ...

  def decode(self, ids) -> str: ...


class Codec(Protocol):
  """The visual tokenizer: [N, S, S, 3] uint8 <-> [N, h, w] int32 codes."""

  def encode(self, images: np.ndarray) -> np.ndarray: ...

  def decode(self, codes: np.ndarray) -> np.ndarray: ...


class PromptError(UserError):
  """A caption, instruction or question that cannot be used."""


def check_text(text, what: str, limit: int) -> str:
  """A caption/instruction/question as a usable str, or a one-line PromptError.

  Also called by the commands before loading a checkpoint, so bad input fails in a second.
  """
  if isinstance(text, (bytes, bytearray)):
    try:
      text = text.decode("utf-8")
    except UnicodeDecodeError:
      raise PromptError(f"the {what} is not valid UTF-8; pass text encoded as UTF-8") from None
  if not isinstance(text, str):
    raise PromptError(f"the {what} is a {type(text).__name__}; pass a string")
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:   # e.g. undecodable command-line bytes (surrogate escapes)
    raise PromptError(f"the {what} is not valid UTF-8; pass text encoded as UTF-8") from None
  if len(text) > limit:
    raise PromptError(f"the {what} is {len(text)} characters; the limit is {limit} "
                      f"(decode.max_prompt_chars): shorten it")
  if not text.strip():
    raise PromptError(f"the {what} is empty; give some text")
  return text


def _one_or_many(x) -> tuple[list, bool]:
  """(items, was a single item): lists and tuples are batches, anything else one item."""
  if isinstance(x, (list, tuple)):
    return list(x), False
  return [x], True


class ArmModel:
  """One decoder with its text and visual tokenizers, sampling through a CompiledSampler."""

  def __init__(self, sampler: CompiledSampler, text_tokenizer: TextTokenizer, codec: Codec,
               config):
    self.sampler = sampler
    self.text = text_tokenizer
    self.codec = codec
    self.config = config
    self.vocab = sampler.vocab
    self.image_size = config.data.image_size
    grid = config.data.image_size // config.tokenizer.patch_size
    self.grid = (grid, grid)

  @classmethod
  def from_checkpoint(cls, config, workdir: str, checkpoint: str = "", *,
                      text_tokenizer: TextTokenizer | None = None,
                      codec: Codec | None = None) -> "ArmModel":
    """Loads the decoder of any trained stage (pretrain or RL) and the workdir's tokenizers.

    checkpoint: a step dir, its `state` dir or a stage dir (its newest step); '' = the most
    recently written decoder checkpoint under <workdir>/checkpoints. The run's own model/data
    sections (saved with the checkpoint) replace the given config's.
    """
    from arm_jax.decode import loading
    step_dir = loading.find_decoder_step(workdir, checkpoint)
    config, graphdef, params = loading.load_decoder(config, step_dir)
    if text_tokenizer is None:
      text_tokenizer = loading.load_text_tokenizer(config, workdir)
    if codec is None:
      codec = loading.load_codec(config, workdir)
    return cls(CompiledSampler(graphdef, params, config), text_tokenizer, codec, config)

  # --- inputs ---------------------------------------------------------------------------------
  def _ids(self, text, what: str) -> list[int]:
    text = check_text(text, what, self.config.decode.max_prompt_chars)
    ids = self.text.encode(text)
    if not ids:
      raise PromptError(f"the {what} {text!r} encodes to no tokens; give some words")
    return ids

  def _codes(self, images) -> np.ndarray:
    """[H, W, 3] uint8 images -> [N, h, w] codes (resized to the tokenizer's size first)."""
    arrays = [fit(check_image(im, f"image {i}"), self.image_size) for i, im in enumerate(images)]
    return np.asarray(self.codec.encode(np.stack(arrays)), np.int32)

  def _keys(self, seed: int, n_prompts: int, n: int) -> jax.Array:
    base = jax.random.key(seed)
    prompt, sample = np.divmod(np.arange(n_prompts * n), n)
    return jax.vmap(lambda p, i: jax.random.fold_in(jax.random.fold_in(base, p), i))(
        prompt, sample)

  def _images(self, rows, guidance: str, n_samples: int, keys, **knobs) -> list[np.ndarray]:
    h, w = self.grid
    out = self.sampler(rows, cons.image_rows(n_samples, h, w, header_in_prompt=True), keys,
                       max_new=h * w + 1, guidance=guidance, **knobs)
    codes = np.stack([out.tokens[i][out.image[i]] for i in range(n_samples)])
    images = self.codec.decode(self.vocab.ids_to_codes(codes).reshape(n_samples, h, w))
    return list(np.asarray(images, np.uint8))

  def _sampling(self, temperature, top_k, top_p) -> dict:
    d = self.config.decode
    pick = lambda v, default: default if v is None else v
    return dict(temperature=pick(temperature, d.temperature), top_k=pick(top_k, d.top_k),
                top_p=pick(top_p, d.top_p))

  # --- text-to-image ----------------------------------------------------------------------------
  def generate(self, prompts: str | Sequence[str], seed: int = 0, *, n: int = 1,
               cfg_scale: float | None = None, temperature: float | None = None,
               top_k: int | None = None, top_p: float | None = None) -> list[np.ndarray]:
    """n images per prompt ([H, W, 3] uint8), prompt-major. Defaults from config.decode."""
    prompts, _ = _one_or_many(prompts)
    if n < 1 or not prompts:
      raise PromptError("nothing to generate: give at least one prompt and n >= 1")
    scale = self.config.decode.cfg_scale if cfg_scale is None else cfg_scale
    cond = [formats.t2i_prompt(self.vocab, self._ids(p, "prompt"), self.grid) for p in prompts]
    rows = [r for r in cond for _ in range(n)]
    guidance = kind_for("t2i", scale)
    if guidance == "t2i":
      rows += [formats.t2i_prompt(self.vocab, None, self.grid)] * len(rows)
    return self._images(rows, guidance, len(prompts) * n, self._keys(seed, len(prompts), n),
                        text_scale=scale, **self._sampling(temperature, top_k, top_p))

  # --- editing ----------------------------------------------------------------------------------
  def edit(self, images, instructions: str | Sequence[str], seed: int = 0, *,
           text_scale: float | None = None, image_scale: float | None = None,
           temperature: float | None = None, top_k: int | None = None,
           top_p: float | None = None):
    """Edited images. One image and one instruction -> one image; lists -> a list."""
    instructions, single = _one_or_many(instructions)
    images = [images] if single else list(images)
    if len(images) != len(instructions) or not images:
      raise PromptError(f"{len(images)} images for {len(instructions)} instructions; give one "
                        f"instruction per image")
    d = self.config.decode
    s_txt = d.edit_text_scale if text_scale is None else text_scale
    s_img = d.edit_image_scale if image_scale is None else image_scale
    ids = [self._ids(t, "instruction") for t in instructions]
    codes = self._codes(images)
    rows = [formats.edit_prompt(self.vocab, c, i, self.grid) for c, i in zip(codes, ids)]
    guidance = kind_for("edit", s_txt, s_img)
    if guidance == "edit":
      rows += [formats.edit_prompt(self.vocab, c, None, self.grid) for c in codes]
      rows += [formats.edit_prompt(self.vocab, None, None, self.grid)] * len(codes)
    out = self._images(rows, guidance, len(images), self._keys(seed, len(images), 1),
                       text_scale=s_txt, image_scale=s_img,
                       **self._sampling(temperature, top_k, top_p))
    return out[0] if single else out

  # --- understanding ----------------------------------------------------------------------------
  def answer(self, images, questions: Sequence[str], seed: int = 0) -> list[str]:
    """Answers, one per (image, question); greedy unless decode.answer_temperature > 0."""
    questions = list(questions)
    images = list(images)
    if len(images) != len(questions) or not images:
      raise PromptError(f"{len(images)} images for {len(questions)} questions; give one "
                        f"question per image")
    ids = [self._ids(q, "question") for q in questions]
    rows = [formats.und_prompt(self.vocab, c, q) for c, q in zip(self._codes(images), ids)]
    out = self.sampler(rows, cons.text_rows(len(rows)), self._keys(seed, len(rows), 1),
                       max_new=self.config.decode.max_new_tokens,
                       temperature=self.config.decode.answer_temperature)
    text_size = self.vocab.text_size
    return [self.text.decode([int(t) for t, ok in zip(toks, valid) if ok and t < text_size])
            for toks, valid in zip(out.tokens, out.valid)]

  def understand(self, image, question: str, seed: int = 0) -> str:
    return self.answer([image], [question], seed)[0]
