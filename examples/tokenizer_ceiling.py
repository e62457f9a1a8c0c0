"""The eval scores a perfect model would get through a workdir's visual tokenizer.

    python examples/tokenizer_ceiling.py --workdir runs/demo --config.eval.num_edit=768

Draws every GenEval / WISE / GEdit item exactly as asked (reference_models.OracleModel), then
passes each drawing through the trained tokenizer's encode and decode (arm_jax/eval/ceiling.py;
the demo's report shows the same row). No model that writes this tokenizer's codes can score
higher, so the gap between these numbers and a model's is what the model itself loses. Config
overrides (--config.x=y) pick the eval sets.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

from arm_jax.config import load_config
from arm_jax.decode.loading import load_codec
from arm_jax.errors import UserError
from arm_jax.eval.ceiling import codec_ceiling


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="run dir with a trained tokenizer")
  parser.add_argument("--config", default="shapes_tiny")
  parser.add_argument("--out", default=None, help="where the eval files go (default: a temp dir)")
  args, overrides = parser.parse_known_args()
  cfg = load_config(args.config, overrides)
  out = args.out or tempfile.mkdtemp(prefix="ceiling_")
  ceiling = codec_ceiling(cfg, load_codec(cfg, args.workdir), out,
                          tasks=("geneval", "wise", "edit"))
  for name, value in ceiling.items():
    print(f"{name:14} {value:.3f}")
  print("(exact_scenes: held-out scenes encode -> decode gives back exactly; GEdit followed: "
        "share of edits whose changed cells are right)")
  print(f"eval files in {os.path.abspath(out)}")


if __name__ == "__main__":
  try:
    main()
  except UserError as e:   # a missing checkpoint, a bad --config key: one line, not a traceback
    sys.exit(f"{os.path.basename(__file__)}: error: {e}")
