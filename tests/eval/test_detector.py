"""The detector on exact renders (>= 99% whole-scene accuracy) and on degraded images."""
import numpy as np
import pytest
from scipy import ndimage

from arm_jax.data import world
from arm_jax.errors import UserError
from arm_jax.eval import detector


def _scene_accuracy(height, width, grid, n, seed, noise=0.0, blur=0.0):
  rng = np.random.default_rng(seed)
  correct = 0
  for _ in range(n):
    scene = world.sample_scene(rng, grid, min(4, grid * grid))
    image = world.render(scene, height, width).astype(np.float32)
    if blur:
      image = ndimage.gaussian_filter(image, (blur, blur, 0))
    if noise:
      image = image + rng.normal(0, noise, image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    correct += detector.parse_scene(image, grid) == scene
  return correct / n


@pytest.mark.parametrize("height,width,grid", [
    (64, 64, 3), (48, 48, 3), (64, 96, 3), (96, 40, 3), (32, 32, 2), (64, 64, 4), (128, 96, 5)])
def test_exact_renders_parse_back_to_their_scene(height, width, grid):
  assert _scene_accuracy(height, width, grid, n=80, seed=grid + height) >= 0.99


def test_degrades_gracefully_under_noise_and_blur():
  clean = _scene_accuracy(64, 64, 3, n=60, seed=1)
  mild = _scene_accuracy(64, 64, 3, n=60, seed=1, noise=15, blur=1.0)
  heavy = _scene_accuracy(64, 64, 3, n=60, seed=1, noise=60, blur=2.5)
  print(f"scene accuracy: clean {clean:.3f}, noise 15 + blur 1.0 {mild:.3f}, "
        f"noise 60 + blur 2.5 {heavy:.3f}")
  assert clean == 1.0
  assert mild >= 0.9          # a blurry generation of the right scene still reads right
  assert heavy < mild         # ... and accuracy falls off rather than staying flat


def test_confidence_falls_with_degradation():
  scene = world.Scene((world.Obj("triangle", "green", "small", 1, 1),), 3)
  image = world.render(scene, 64).astype(np.float32)
  sharp = detector.detect(image, 3)[0].confidence
  blurred = detector.detect(ndimage.gaussian_filter(image, (2.0, 2.0, 0)), 3)[0].confidence
  assert sharp > 0.9
  assert blurred < sharp


def test_off_palette_colour_gets_nearest_name_and_low_confidence():
  scene = world.Scene((world.Obj("square", "red", "large", 0, 0),), 2)
  image = world.render(scene, 32)
  orange = image.copy()
  orange[(image == world.COLORS["red"]).all(-1)] = (235, 130, 40)   # between red and yellow
  on, off = detector.detect(image, 2)[0], detector.detect(orange, 2)[0]
  assert off.color in ("red", "yellow")
  assert off.color_distance > 20 > on.color_distance
  assert off.confidence < on.confidence


def test_blurred_white_is_white_not_the_grey_of_its_edges():
  scene = world.Scene((world.Obj("circle", "white", "small", 0, 2),), 3)
  image = ndimage.gaussian_filter(world.render(scene, 48).astype(np.float32), (1.5, 1.5, 0))
  assert detector.detect(image, 3)[0].color == "white"


def test_specks_are_stray_pixels_not_objects():
  image = world.render(world.Scene((), 3), 64)
  image[5, 5] = world.COLORS["blue"]
  image[40:42, 50] = world.COLORS["red"]
  parse = detector.parse_image(image, 3)
  assert parse.detections == ()
  assert parse.stray_pixels == 3 and parse.foreground_pixels == 3


def test_neighbours_bridged_by_blur_stay_two_objects():
  scene = world.Scene((world.Obj("square", "red", "large", 1, 0),
                       world.Obj("square", "red", "large", 1, 1)), 3)
  image = ndimage.gaussian_filter(world.render(scene, 48).astype(np.float32), (1.5, 1.5, 0))
  labels, n = ndimage.label(detector.palette_labels(image)[0] != 0)
  assert n == 1                                     # one blob in the image ...
  assert detector.parse_scene(image, 3) == scene    # ... read as the two objects it shows


def test_parse_scene_keeps_most_confident_object_per_cell():
  scene = world.Scene((world.Obj("circle", "blue", "large", 0, 0),), 1)
  image = world.render(scene, 40)
  image[0:6, 0:8] = world.COLORS["yellow"]          # a second, smaller region in the same cell
  parse = detector.parse_image(image, 1)
  assert len(parse.detections) == 2
  assert parse.scene() == scene


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                 np.zeros((8, 8, 3), bool).astype(object)])
def test_unreadable_images_are_user_errors(bad):
  with pytest.raises(UserError, match="image"):
    detector.detect(bad, 2)


def test_grid_must_be_positive():
  with pytest.raises(UserError, match="grid"):
    detector.detect(np.zeros((8, 8, 3), np.uint8), 0)


def test_an_off_background_does_not_inflate_objects():
  # Decoders often return a background a little off the palette's (24, 24, 24).
  rng = np.random.default_rng(3)
  correct = 0
  for _ in range(30):
    scene = world.sample_scene(rng, 3, 3)
    image = world.render(scene, 64).astype(np.float32)
    image[(image == world.BACKGROUND).all(-1)] += (20, 18, 14)
    image = ndimage.gaussian_filter(image, (1.0, 1.0, 0))
    correct += detector.parse_scene(np.clip(np.round(image), 0, 255), 3) == scene
  assert correct == 30
