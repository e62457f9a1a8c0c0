"""Entry points of the tokenizer stages, for the demo (fn(config, workdir) -> dict) and the CLI.

    arm-jax train-teacher      --workdir W   mini-SigLIP teacher (or import teacher.hf_checkpoint)
    arm-jax train-tokenizer    --workdir W   FSQ/VQ tokenizer with the four objectives
    arm-jax tokenize-dataset   --workdir W   every split's images -> codes (ArrayRecord, W/codes)
    arm-jax decode             --workdir W   codes (.npy/.json, or a tokenized split) -> PNGs
    arm-jax tokenizer-ablation --workdir W   loss subsets -> table of zero-shot / PSNR / usage

Each is idempotent: training resumes from (or stops at) its checkpoints, tokenize-dataset skips
splits already encoded by the same tokenizer weights.
"""
from __future__ import annotations

import hashlib
import json
import os

import jax
import numpy as np

from arm_jax.errors import UserError
from arm_jax.tokenizer import data as data_lib
from arm_jax.tokenizer import evaluate, weights
from arm_jax.tokenizer.api import load_visual_tokenizer
from arm_jax.tokenizer.train_teacher import load_teacher
from arm_jax.tokenizer.train_teacher import train_teacher as _train_teacher
from arm_jax.tokenizer.train_tokenizer import STAGE, tokenizer_fn
from arm_jax.tokenizer.train_tokenizer import train_tokenizer as _train_tokenizer


def train_teacher(config, workdir: str) -> dict:
  return _train_teacher(config, workdir)


def train_tokenizer(config, workdir: str) -> dict:
  return _train_tokenizer(config, workdir)


def params_digest(params) -> str:
  """A short fingerprint of a model's weights (names which tokenizer wrote a set of codes)."""
  h = hashlib.sha1()
  for leaf in jax.tree.leaves(params):
    h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return h.hexdigest()[:12]


def tokenize_dataset(config, workdir: str) -> dict:
  """Encodes every split of config.data.dataset into <workdir>/codes; returns {split: path}."""
  from arm_jax.data.build import data_dir_of
  from arm_jax.data.codes import write_dataset_codes
  vt = load_visual_tokenizer(config, workdir)
  encoder_id = f"tokenizer-{params_digest(vt.params)}"
  return write_dataset_codes(config, data_dir_of(config, workdir), os.path.join(workdir, "codes"),
                             vt.encode, encoder_id=encoder_id)


def tokenizer_metrics(config, workdir: str, *, stage: str = STAGE) -> dict:
  """Held-out metrics of the teacher and the tokenizer; also written to <workdir>/tokenizer/."""
  tok = data_lib.text_tokenizer(config, workdir)
  teacher = load_teacher(config, workdir)
  fn = tokenizer_fn(config)
  model = weights.model_from_params(fn, weights.load_params(workdir, stage, fn,
                                                            command="train-tokenizer"))
  out = {"teacher": evaluate.teacher_metrics(config, teacher, tok),
         "tokenizer": evaluate.tokenizer_quality(config, model, teacher, tok)}
  out_dir = os.path.join(workdir, "tokenizer")
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, f"{stage}_metrics.json"), "w") as f:
    json.dump(out, f, indent=1)
  _reconstruction_grid(config, model, os.path.join(out_dir, f"{stage}_reconstructions.png"))
  return out


def _reconstruction_grid(config, model, path: str) -> str:
  """Held-out images above their reconstructions, as a PNG beside the metrics."""
  from arm_jax.eval import report as rep
  images, recon = evaluate.reconstructions(config, model)
  return rep.image_grid(path, [("held-out image", images), ("reconstruction", recon)],
                        "Visual tokenizer: images and their reconstructions from the codes",
                        rep.provenance(config, seed=config.eval.seed))


# ---------------------------------------------------------------------------------------------
# CLI handlers: fn(config, args) -> exit status
# ---------------------------------------------------------------------------------------------

def _print(result: dict) -> None:
  print(json.dumps(result, indent=1, default=str))


def run_train_teacher(config, args) -> int:
  _print(train_teacher(config, args.workdir))
  return 0


def run_train_tokenizer(config, args) -> int:
  _print(train_tokenizer(config, args.workdir))
  if not args.skip_metrics:
    _print(tokenizer_metrics(config, args.workdir))
  return 0


def run_tokenize_dataset(config, args) -> int:
  _print(tokenize_dataset(config, args.workdir))
  return 0


def read_codes(path: str) -> np.ndarray:
  """Codes from a .npy file or a .json list: [N, h, w] or one [h, w] grid."""
  if not os.path.isfile(path):
    raise UserError(f"codes file {path} does not exist; give a .npy or .json of [N, h, w] ints")
  try:
    codes = np.load(path) if path.endswith(".npy") else np.asarray(json.load(open(path)))
  except (ValueError, json.JSONDecodeError) as e:
    raise UserError(f"cannot read codes from {path} ({type(e).__name__}); give a .npy or a "
                    f".json list of [N, h, w] ints") from e
  return codes[None] if codes.ndim == 2 else codes


def _split_codes(config, workdir: str, split: str, count: int) -> np.ndarray:
  from arm_jax.data.build import data_dir_of
  from arm_jax.data.codes import CodesSource, codes_path
  from arm_jax.data.sources import dataset_records
  records = dataset_records(config, data_dir_of(config, workdir), split, images=False)
  source = CodesSource(codes_path(os.path.join(workdir, "codes"), records, split), records)
  return np.stack([source[i][0] for i in range(min(count, len(source)))])


def run_decode(config, args) -> int:
  from PIL import Image
  vt = load_visual_tokenizer(config, args.workdir)
  codes = (read_codes(args.codes) if args.codes else
           _split_codes(config, args.workdir, args.split, args.count))
  images = vt.decode(codes)
  out = args.out or os.path.join(args.workdir, "decoded")
  os.makedirs(out, exist_ok=True)
  for i, image in enumerate(images):
    Image.fromarray(image).save(os.path.join(out, f"{i:04d}.png"))
  print(f"wrote {len(images)} PNG(s) to {out}")
  return 0


def run_ablation(config, args) -> int:
  from arm_jax.tokenizer.ablation import run_ablation as ablation
  print(ablation(config, args.workdir)["table"])
  return 0
