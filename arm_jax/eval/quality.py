"""Perceptual quality of a shapes-world image, 0..10: the analogue of GEdit's G_PQ.

A good shapes-world image is flat and exact: every pixel is the background or a palette colour,
every object is the ideal shape in its cell, and nothing else is there. Three factors in 0..1:
- clean: fraction of pixels within CLEAN_TOLERANCE of the background or a palette colour;
- form: mean IoU of each detected object's pixels with the ideal rendering of what was detected
  (world.object_mask); 1 when nothing was detected (emptiness is a semantic failure, not an
  ugly image);
- tidy: 1 - the fraction of foreground pixels in specks too small to be objects.
G_PQ = 10 * clean * form * tidy. An exact render scores 10.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from arm_jax.data import world
from arm_jax.eval.detector import Parse, as_rgb, palette_labels

# RGB distance (0..255 per channel) within which a pixel counts as palette-clean.
CLEAN_TOLERANCE = 40.0


@dataclasses.dataclass(frozen=True)
class Quality:
  clean: float
  form: float
  tidy: float

  @property
  def score(self) -> float:
    """G_PQ on GEdit's 0..10 scale."""
    return 10.0 * self.clean * self.form * self.tidy


def clean_fraction(image) -> float:
  """Fraction of pixels within CLEAN_TOLERANCE of the background or a palette colour."""
  _, distance = palette_labels(as_rgb(image))
  return float((distance <= CLEAN_TOLERANCE).mean())


def form_score(parse: Parse, height: int, width: int) -> float:
  """Mean IoU of detected objects with their ideal renderings; 1 when there are none."""
  if not parse.detections:
    return 1.0
  ious = []
  for detection, mask in zip(parse.detections, parse.masks):
    ideal = world.object_mask(detection.to_obj(), parse.grid, height, width)
    ious.append(np.logical_and(mask, ideal).sum() / max(np.logical_or(mask, ideal).sum(), 1))
  return float(np.mean(ious))


def quality(image, parse: Parse) -> Quality:
  """[H, W, 3] image + its Parse -> Quality (G_PQ = .score)."""
  height, width = np.asarray(image).shape[:2]
  tidy = 1.0 - parse.stray_pixels / max(parse.foreground_pixels, 1)
  return Quality(clean_fraction(image), form_score(parse, height, width), tidy)
