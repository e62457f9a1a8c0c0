"""Eval throughput: images scored per second, and the whole toy eval against its 3-minute budget.

    python benchmarks/eval_throughput.py           # shapes_tiny eval sets
    python benchmarks/eval_throughput.py --quick   # fewer images

Figures, all measured in this run:
- the detector (arm_jax/eval/detector.py) on exact renders and on blurred + noisy ones, next to a
  baseline of the cheapest classical parse (nearest-palette labels + connected components, no
  colour or shape fitting), so the ratio is what the blur-robust fitting costs;
- run_eval on the shapes_tiny config with the oracle model (rendering is nearly free, so this is
  the suite's own cost: parsing, scoring, benchmark files, figures, report), as images scored/s
  and as a fraction of the 180 s budget.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from scipy import ndimage

from arm_jax.config import load_config
from arm_jax.data import world
from arm_jax.eval.detector import palette_labels, parse_image
from arm_jax.eval.reference_models import OracleModel
from arm_jax.eval.sets import build_sets
from arm_jax.eval.suite import run_eval

BUDGET_S = 180.0


def _images(n: int, grid: int, size: int, degrade: bool, seed: int = 0) -> list[np.ndarray]:
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    image = world.render(world.sample_scene(rng, grid, 3), size).astype(np.float32)
    if degrade:
      image = ndimage.gaussian_filter(image, (1.0, 1.0, 0)) + rng.normal(0, 10, image.shape)
    out.append(np.clip(np.round(image), 0, 255).astype(np.uint8))
  return out


def baseline_parse(image: np.ndarray, grid: int) -> list[tuple]:
  """The cheapest classical parse: palette labels, components, their boxes and majority colour."""
  labels, _ = palette_labels(image.astype(np.float32))
  components, n = ndimage.label(labels != 0)
  boxes = ndimage.find_objects(components)
  return [(box, np.bincount(labels[components == k + 1]).argmax()) for k, box in enumerate(boxes)]


def _rate(fn, images, grid: int, repeats: int = 3) -> float:
  fn(images[0], grid)                                  # warm caches
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for image in images:
      fn(image, grid)
    best = min(best, time.perf_counter() - start)
  return len(images) / best


class _Timed:
  """Wraps a model to time its calls, so the suite's own cost can be told apart."""

  def __init__(self, model):
    self.model, self.seconds = model, 0.0

  def _call(self, name, *args):
    start = time.perf_counter()
    out = getattr(self.model, name)(*args)
    self.seconds += time.perf_counter() - start
    return out

  def generate(self, prompts, seed):
    return self._call("generate", prompts, seed)

  def edit(self, images, instructions, seed):
    return self._call("edit", images, instructions, seed)

  def answer(self, images, questions):
    return self._call("answer", images, questions)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="fewer images")
  args = parser.parse_args()
  n = 40 if args.quick else 150
  config = load_config("shapes_tiny")
  grid, size = config.data.grid, config.data.image_size

  print(f"detector on {n} images, {size}x{size}, grid {grid} (best of 3 passes)")
  for label, degrade in (("exact renders", False), ("blur 1px + noise 10", True)):
    images = _images(n, grid, size, degrade)
    base = _rate(baseline_parse, images, grid)
    det = _rate(parse_image, images, grid)
    print(f"  {label:22s} detector {det:7.1f} img/s   baseline {base:7.1f} img/s   "
          f"detector/baseline {det / base:.3f}")

  e = config.eval
  scored = e.num_geneval * e.samples_per_prompt + e.num_wise + e.num_edit + e.num_und
  model = _Timed(OracleModel(build_sets(config)))
  with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    metrics = run_eval(config, model, out)
    total = time.perf_counter() - start
  suite = total - model.seconds
  timing = ", ".join(f"{k} {v:.1f}s" for k, v in metrics["timing"].items())
  print(f"full toy eval ({config.name}: {scored} images/questions scored, report included)")
  print(f"  total {total:.1f}s = oracle model {model.seconds:.1f}s + suite {suite:.1f}s ({timing})")
  print(f"  suite throughput {scored / suite:.1f} items/s; "
        f"total / {BUDGET_S:.0f}s budget = {total / BUDGET_S:.3f}")
  print(f"  oracle headline: {metrics['headline']}")


if __name__ == "__main__":
  main()
