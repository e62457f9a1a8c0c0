"""`arm-jax generate | edit | ask`: the inference API from the command line.

    arm-jax generate --workdir runs/demo --prompt "a red circle left of a blue square" --n 4
    arm-jax edit --workdir runs/demo --image in.png --instruction "make the circle green"
    arm-jax ask --workdir runs/demo --image in.png --question "how many circles are there?"

Each loads the newest decoder checkpoint of --workdir (or --checkpoint: a pretrain or RL step
or stage dir) with the workdir's text and visual tokenizers.
"""
from __future__ import annotations

import os
import re

from arm_jax.decode.api import ArmModel, check_text
from arm_jax.decode.images import load_image, save_png


def _model(config, args) -> ArmModel:
  return ArmModel.from_checkpoint(config, args.workdir, args.checkpoint)


def _slug(text: str, limit: int = 40) -> str:
  return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit] or "sample"


def _text(config, text: str, what: str) -> str:
  """Checked before the checkpoint loads, so bad input fails at once, not after the load."""
  return check_text(text, what, config.decode.max_prompt_chars)


def generate(config, args) -> int:
  """Writes n PNGs for --prompt and prints their paths."""
  _text(config, args.prompt, "prompt")
  images = _model(config, args).generate(args.prompt, args.seed, n=args.n)
  out = args.out or os.path.join(args.workdir, "samples")
  for i, image in enumerate(images):
    print(save_png(os.path.join(out, f"{_slug(args.prompt)}_s{args.seed}_{i}.png"), image))
  return 0


def edit(config, args) -> int:
  """Writes the edited --image to --out (default: <workdir>/edits/<name>_edited.png)."""
  _text(config, args.instruction, "instruction")
  image = load_image(args.image)
  edited = _model(config, args).edit(image, args.instruction, args.seed)
  name = os.path.splitext(os.path.basename(args.image))[0]
  out = args.out or os.path.join(args.workdir, "edits", f"{name}_edited.png")
  print(save_png(out, edited))
  return 0


def ask(config, args) -> int:
  """Prints the answer to --question about --image."""
  _text(config, args.question, "question")
  image = load_image(args.image)
  print(_model(config, args).understand(image, args.question))
  return 0
