"""The demo's stages that join rooms together: fn(config, workdir) -> dict for arm_jax/demo.py.

Each is a thin call into the library (the same calls the CLI makes); what each returns goes into
`<workdir>/stages/<stage>.done.json` and the report.
"""
from __future__ import annotations

import glob
import json
import os

from arm_jax.errors import UserError


def _last_row(workdir: str, stage: str) -> dict:
  from arm_jax.train.metrics import read_jsonl
  path = os.path.join(workdir, "metrics", f"{stage}.jsonl")
  rows = read_jsonl(path) if os.path.isfile(path) else []
  return rows[-1] if rows else {}


def pretrain(config, workdir: str) -> dict:
  """AR pretraining on the tokenized mixture; returns the last logged metrics."""
  from arm_jax.train.pretrain import pretrain as run_pretrain
  run_pretrain(config, workdir)
  return _last_row(workdir, "pretrain")


def rl_stage_dirs(workdir: str) -> list[str]:
  """The RL schedule's checkpoint folders, in schedule order (checkpoints/rl_<k>_<kind>)."""
  dirs = glob.glob(os.path.join(workdir, "checkpoints", "rl_*"))
  return sorted((d for d in dirs if not d.endswith(".corrupt")),
                key=lambda d: int(os.path.basename(d).split("_")[1]))


def _evaluate(config, workdir: str, checkpoint: str, name: str) -> dict:
  from arm_jax.decode.api import ArmModel
  from arm_jax.eval.suite import run_eval
  tok_metrics_file = os.path.join(workdir, "tokenizer", "tokenizer_metrics.json")
  tok = None
  if os.path.isfile(tok_metrics_file):
    with open(tok_metrics_file) as f:
      tok = json.load(f)
  model = ArmModel.from_checkpoint(config, workdir, checkpoint)
  tb = os.path.join(workdir, "tb")
  metrics = run_eval(config, model, os.path.join(workdir, "eval", name), tok,
                     curves_from=tb if os.path.isdir(tb) else None)
  return metrics["headline"]


def eval_sft(config, workdir: str) -> dict:
  """The eval suite on the pretrained (SFT) checkpoint: the 'before RL' row."""
  return _evaluate(config, workdir, os.path.join(workdir, "checkpoints", "pretrain"), "sft")


def rl(config, workdir: str) -> dict:
  from arm_jax.rl.stages import run_rl
  return run_rl(config, workdir)


def eval_rl(config, workdir: str) -> dict:
  """The eval suite on the last RL stage's checkpoint: the 'after RL' row."""
  stages = rl_stage_dirs(workdir)
  if not stages:
    raise UserError(f"no RL checkpoint under {workdir}/checkpoints; run `arm-jax rl` first")
  return _evaluate(config, workdir, stages[-1], "rl")


def tokenizer_metrics(config, workdir: str) -> dict:
  """Held-out teacher and tokenizer metrics, with the tokenizer's ceiling (what a perfect model
  scores through it: eval/ceiling.py) added to <workdir>/tokenizer/tokenizer_metrics.json."""
  from arm_jax.decode.loading import load_codec
  from arm_jax.eval.ceiling import codec_ceiling
  from arm_jax.tokenizer.stages import tokenizer_metrics as measure
  out = measure(config, workdir)
  out["ceiling"] = codec_ceiling(config, load_codec(config, workdir),
                                 os.path.join(workdir, "tokenizer", "ceiling"))
  with open(os.path.join(workdir, "tokenizer", "tokenizer_metrics.json"), "w") as f:
    json.dump(out, f, indent=1)
  return out


def _parity(params, config, hf_dir: str, seed: int = 0) -> float:
  """Max |logit difference| between our decoder (f32) and the exported model in transformers,
  on one sequence mixing text ids, specials and image codes."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import torch
  from flax import nnx
  from transformers import AutoModelForCausalLM

  from arm_jax.config import set_value
  from arm_jax.model.transformer import ModelConfig
  from arm_jax.train.pretrain import decoder_fn
  cfg = config.copy_and_resolve_references()
  cfg.unlock()
  set_value(cfg, "model.dtype", "float32")
  vocab = ModelConfig.from_config(cfg.model).vocab
  rng = np.random.default_rng(seed)
  ids = np.concatenate([rng.integers(0, vocab.text_size, 8),
                        vocab.image_tokens(rng.integers(0, vocab.codebook_size, (2, 3))),
                        rng.integers(0, vocab.text_size, 4)]).astype(np.int32)[None]
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: decoder_fn(cfg)(nnx.Rngs(0))))
  ours = np.asarray(nnx.merge(graphdef, jax.device_get(params))(jnp.asarray(ids)))
  hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
  with torch.no_grad():
    theirs = hf(torch.from_numpy(ids.astype(np.int64))).logits.numpy()
  return float(np.abs(ours - theirs).max())


def export(config, workdir: str) -> dict:
  """The final policy (last RL stage, else pretrain) -> a transformers-loadable HF directory,
  checked by comparing logits with transformers on a mixed text+image sequence."""
  from arm_jax.interop.checkpoint_params import find_step_dir, restore_params, trained_config
  from arm_jax.interop.commands import text_tokenizer_path
  from arm_jax.interop.hf_export import export_params
  stages = rl_stage_dirs(workdir) or [os.path.join(workdir, "checkpoints", "pretrain")]
  step_dir = find_step_dir(workdir, stages[-1])
  cfg = trained_config(config, step_dir)
  params = restore_params(step_dir, cfg)
  out = os.path.join(workdir, "export", "hf")
  files = export_params(params, cfg, out, text_tokenizer_path(cfg, workdir))
  result = {"checkpoint": os.path.relpath(step_dir, workdir),
            "hf_dir": os.path.relpath(out, workdir), "files": len(files),
            "max_abs_logit_diff_vs_transformers": _parity(params, cfg, out)}
  result.update(_export_decoder(config, workdir, out))
  return result


def _export_decoder(config, workdir: str, out: str, seed: int = 0) -> dict:
  """The tokenizer's pixel decoder as PyTorch, checked against the JAX decoder on random codes:
  the fraction of uint8 pixels that agree exactly and the largest difference in levels."""
  import importlib.util

  import numpy as np
  import torch

  from arm_jax.interop.decoder_export import export_pixel_decoder, load_tokenizer_params
  from arm_jax.tokenizer import weights
  from arm_jax.tokenizer.api import VisualTokenizer
  from arm_jax.tokenizer.train_tokenizer import tokenizer_fn
  params = load_tokenizer_params(config, workdir)
  if params is None:
    return {}
  files = export_pixel_decoder(params, config, out)
  spec = importlib.util.spec_from_file_location("pixel_decoder", os.path.join(out, files[2]))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  torch_dec = module.PixelDecoder.from_pretrained(out)
  vt = VisualTokenizer(weights.model_from_params(tokenizer_fn(config), params))  # read once
  codes = np.random.default_rng(seed).integers(0, vt.codebook_size, (4, vt.grid, vt.grid))
  want = vt.decode(codes).astype(int)
  with torch.no_grad():
    got = torch_dec(torch.tensor(codes)).numpy().astype(int)
  return {"pixel_decoder_files": len(files),
          "torch_decoder_pixels_equal": float((got == want).mean()),
          "torch_decoder_max_level_diff": int(np.abs(got - want).max())}
