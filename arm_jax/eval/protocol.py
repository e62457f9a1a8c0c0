"""What the eval suite needs from a model: three batch calls, no model internals.

The CLI and the demo adapt a checkpoint + the compiled sampler to this protocol; tests use
stand-ins (arm_jax/eval/reference_models.py). Images are [height, width, 3] uint8 arrays.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from arm_jax.errors import UserError


class ModelOutputError(UserError, ValueError):
  """A model adapter returned the wrong number or kind of outputs."""


@runtime_checkable
class EvalModel(Protocol):

  def generate(self, prompts: Sequence[str], seed: int) -> list[np.ndarray]:
    """Text-to-image: one [H, W, 3] uint8 image per prompt. Same seed -> same images."""

  def edit(self, images: Sequence[np.ndarray], instructions: Sequence[str],
           seed: int) -> list[np.ndarray]:
    """Instruction-guided editing: one edited [H, W, 3] uint8 image per (image, instruction)."""

  def answer(self, images: Sequence[np.ndarray], questions: Sequence[str]) -> list[str]:
    """Understanding: one short text answer per (image, question)."""


def checked_images(images, expected: int, call: str) -> list[np.ndarray]:
  """A model's images -> list of [H, W, 3] uint8; a one-line error naming `call` otherwise."""
  images = list(images)
  if len(images) != expected:
    raise ModelOutputError(f"model.{call} returned {len(images)} images for {expected} inputs; "
                           f"return one image per input")
  out = []
  for i, image in enumerate(images):
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
      raise ModelOutputError(f"model.{call} image {i} has shape {array.shape}; expected "
                             f"[height, width, 3]")
    if array.dtype != np.uint8:
      raise ModelOutputError(f"model.{call} image {i} has dtype {array.dtype}; return uint8 "
                             f"pixels in 0..255")
    out.append(array)
  return out


def checked_answers(answers, expected: int) -> list[str]:
  answers = list(answers)
  if len(answers) != expected or not all(isinstance(a, str) for a in answers):
    raise ModelOutputError(f"model.answer returned {len(answers)} values for {expected} "
                           f"questions; return one string per question")
  return answers
