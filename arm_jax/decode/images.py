"""Images in and out of the inference API: read/check/resize user images, write PNGs.

Every problem with a user's image (missing, not an image, truncated, not RGB, wrong array
shape or dtype) is a one-line UserError that says what to do.
"""
from __future__ import annotations

import os

import numpy as np

from arm_jax.errors import UserError


class ImageError(UserError):
  """A user image that cannot be used."""


# Modes with more than 8 bits per channel: PIL's convert('RGB') clips them (a 16-bit image turns
# mostly white), so the advice for them is to rescale, not to convert.
HIGH_BIT_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def load_image(path: str) -> np.ndarray:
  """A PNG/JPEG/... file -> [H, W, 3] uint8. Only 8-bit RGB images are accepted."""
  from PIL import Image, UnidentifiedImageError
  if not os.path.isfile(path):
    raise ImageError(f"image {path} does not exist; give the path of an RGB PNG or JPEG file")
  try:
    with Image.open(path) as im:
      im.load()
      mode = im.mode
      array = np.asarray(im)
  except UnidentifiedImageError:
    raise ImageError(f"{path} is not an image file PIL can read; give an RGB PNG or JPEG") \
        from None
  except Image.DecompressionBombError as e:   # refused from the header, before decoding
    raise ImageError(f"{path} is too large to load ({str(e).splitlines()[0]}); downscale it: "
                     f"the model resizes every image to data.image_size anyway") from None
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageError(f"{path} could not be decoded ({str(e).splitlines()[0]}); the file is "
                     f"truncated or corrupt, re-export it") from None
  if mode in HIGH_BIT_DEPTH:
    raise ImageError(f"{path} is a mode '{mode}' image (more than 8 bits per pixel); give an "
                     f"8-bit RGB image (scale the values to 0..255 first: convert('RGB') "
                     f"would clip them)")
  if mode != "RGB":
    raise ImageError(f"{path} is a mode '{mode}' image; give an RGB image (convert it, e.g. "
                     f"PIL: Image.open(path).convert('RGB').save(new_path))")
  return array


def check_image(image, what: str = "image") -> np.ndarray:
  """An in-memory image -> [H, W, 3] uint8, or a one-line error."""
  array = np.asarray(image)
  if array.ndim != 3 or array.shape[-1] != 3 or min(array.shape[:2]) < 1:
    raise ImageError(f"{what} has shape {array.shape}; give an RGB image array [H, W, 3]")
  if array.dtype != np.uint8:
    raise ImageError(f"{what} is {array.dtype}; give uint8 pixels 0..255 (e.g. "
                     f"np.clip(x, 0, 255).astype(np.uint8))")
  return array


def fit(image: np.ndarray, size: int) -> np.ndarray:
  """[H, W, 3] uint8 -> [size, size, 3] uint8 (bicubic; a no-op when already that size).

  The visual tokenizer takes square images of one size; other sizes and aspect ratios are
  resized to it (a non-square image is stretched).
  """
  if image.shape[:2] == (size, size):
    return image
  from PIL import Image
  return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def save_png(path: str, image: np.ndarray) -> str:
  from PIL import Image
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(check_image(image)).save(path, format="PNG")
  return path
