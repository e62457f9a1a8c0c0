"""G_PQ: exact renders score 10; noise, specks and deformed objects each cost."""
import numpy as np
import pytest
from scipy import ndimage

from arm_jax.data import world
from arm_jax.eval.detector import parse_image
from arm_jax.eval.quality import quality

SCENE = world.Scene((world.Obj("triangle", "yellow", "large", 0, 1),
                     world.Obj("circle", "purple", "small", 2, 2)), 3)


def _quality(image):
  image = np.clip(np.round(image), 0, 255).astype(np.uint8)
  return quality(image, parse_image(image, 3))


def test_exact_render_is_perfect():
  q = _quality(world.render(SCENE, 64))
  assert (q.clean, q.form, q.tidy, q.score) == (1.0, 1.0, 1.0, 10.0)


def test_noise_costs_cleanliness():
  image = world.render(SCENE, 64) + np.random.default_rng(0).normal(0, 30, (64, 64, 3))
  q = _quality(image)
  assert q.clean < 0.8 and q.score < 8.0


def test_specks_cost_tidiness():
  image = world.render(SCENE, 64)
  for y, x in ((3, 3), (30, 5), (60, 30)):
    image[y, x] = world.COLORS["green"]
  q = _quality(image)
  assert q.clean == 1.0 and q.tidy < 1.0


def test_off_centre_object_costs_form():
  image = world.render(SCENE, 64)
  shifted = np.full_like(image, world.BACKGROUND)
  shifted[4:] = image[:-4]                        # every object 4 px down
  q = _quality(shifted)
  assert q.form < 0.9
  assert q.score == pytest.approx(10 * q.clean * q.form * q.tidy)


def test_blur_costs_less_than_noise():
  blurred = ndimage.gaussian_filter(world.render(SCENE, 64).astype(np.float32), (1.0, 1.0, 0))
  noisy = world.render(SCENE, 64) + np.random.default_rng(1).normal(0, 40, (64, 64, 3))
  assert 5.0 < _quality(blurred).score < 10.0
  assert _quality(noisy).score < _quality(blurred).score
