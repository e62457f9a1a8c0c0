"""What a perfect model could score through a visual tokenizer: the tokenizer's ceiling.

    ceiling = codec_ceiling(config, vt, out_dir)   # vt: encode(images) -> codes, decode(codes)

- exact_scenes: the share of held-out scenes that encode -> decode gives back exactly (every
  object's shape, colour, size and cell, as the detector parses the reconstruction). PSNR says
  little here: a blurred shape costs a few dB, a wrong shape costs the scene.
- GenEval / G_O: the eval suite on reference_models.OracleModel, which draws every item exactly
  and passes the drawing through the codec. No model that writes this tokenizer's codes can
  score higher.
- codes_per_kind / kinds_per_code: how the codebook covers the world's patch kinds (an object's
  shape, colour and size, or an empty cell) when cells and patches line up: 1 / 1 is one code
  per kind, what the AR model finds easiest to learn.
"""
from __future__ import annotations

import numpy as np

from arm_jax.data import world
from arm_jax.eval.detector import parse_scene
from arm_jax.eval.reference_models import OracleModel
from arm_jax.eval.sets import build_sets
from arm_jax.eval.suite import evaluate

NUM_SCENES = 512
_SEED = 4242   # a scene stream of its own


def heldout_scenes(config, n: int = NUM_SCENES) -> list[world.Scene]:
  d = config.data
  rng = np.random.default_rng([config.eval.seed, _SEED])
  return [world.sample_scene(rng, d.grid, d.max_objects) for _ in range(n)]


def exact_scenes(config, codec, scenes: list[world.Scene]) -> float:
  """Share of `scenes` that the detector parses back exactly after encode -> decode."""
  size = config.data.image_size
  images = np.stack([world.render(s, size) for s in scenes])
  recon = codec.decode(codec.encode(images))
  return float(np.mean([parse_scene(r, s.grid) == s for r, s in zip(recon, scenes)]))


def code_coverage(config, codec, scenes: list[world.Scene]) -> dict | None:
  """Distinct codes per patch kind and kinds per code, when one patch is one grid cell."""
  d = config.data
  codes = codec.encode(np.stack([world.render(s, d.image_size) for s in scenes]))
  if codes.shape[1:] != (d.grid, d.grid):
    return None
  kind_codes: dict = {}
  for scene, grid in zip(scenes, codes):
    by_cell = scene.by_cell()
    for (r, c), code in np.ndenumerate(grid):
      o = by_cell.get((r, c))
      kind = (o.shape, o.color, o.size) if o else "empty"
      kind_codes.setdefault(kind, set()).add(int(code))
  code_kinds: dict = {}
  for kind, cs in kind_codes.items():
    for c in cs:
      code_kinds.setdefault(c, set()).add(kind)
  return {"codes_per_kind": float(np.mean([len(v) for v in kind_codes.values()])),
          "kinds_per_code": float(np.mean([len(v) for v in code_kinds.values()]))}


def codec_ceiling(config, codec, out_dir: str, *, tasks=("geneval", "edit")) -> dict:
  """{exact_scenes, codes_per_kind, kinds_per_code, GenEval, GEdit G_O, ...} of `codec`."""
  scenes = heldout_scenes(config)
  out = {"exact_scenes": exact_scenes(config, codec, scenes)}
  out.update(code_coverage(config, codec, scenes) or {})
  metrics = evaluate(config, OracleModel(build_sets(config), codec=codec), out_dir,
                     tasks=tasks).metrics
  out.update(metrics["headline"])
  if "edit" in metrics:
    out["GEdit followed"] = metrics["edit"]["followed"]
  return out
