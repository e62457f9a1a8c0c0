"""`arm-jax import-hf` and `arm-jax export-hf`: parse-free handlers over the interop library.

    arm-jax import-hf --config configs/arm_7b.py --hf Qwen2.5-7B/ --out runs/qwen_init
    arm-jax pretrain  --config configs/arm_7b.py --workdir runs/arm_7b --init runs/qwen_init \\
        --config.data.text_tokenizer=runs/qwen_init/tokenizer.json
    arm-jax export-hf --config configs/arm_7b.py --workdir runs/arm_7b --out runs/arm_7b/hf
    python examples/generate_torch.py runs/arm_7b/hf "a red circle" out.png   # PyTorch only
"""
from __future__ import annotations

import logging
import os

import jax

from arm_jax.errors import UserError

log = logging.getLogger(__name__)


def import_hf(config, args) -> int:
  from arm_jax.interop.hf_import import import_hf as run_import
  out = args.out or os.path.join(args.workdir, "init")
  info = run_import(args.hf, config, out)
  tok = os.path.join(out, info["text_tokenizer"])
  print(f"imported {args.hf} -> {out}\nnext: arm-jax pretrain --config {args.config} "
        f"--workdir {args.workdir} --init {out} --config.data.text_tokenizer={tok}")
  return 0


def text_tokenizer_path(config, workdir: str) -> str:
  """The tokenizer the run trained with: data.text_tokenizer, else build-data's corpus model."""
  if config.data.text_tokenizer:
    return config.data.text_tokenizer
  from arm_jax.data.text_tokenizer import corpus_tokenizer_path
  path = corpus_tokenizer_path(config, config.data.data_dir or os.path.join(workdir, "data"))
  if os.path.isfile(path):
    return path
  log.warning("no text tokenizer found (%s); exporting the model without one", path)
  return ""


def _export_pixel_decoder(config, workdir: str, out: str) -> list[str]:
  """The trained visual tokenizer's pixel decoder as PyTorch, when the run has one."""
  from arm_jax.interop.decoder_export import export_pixel_decoder, load_tokenizer_params
  params = load_tokenizer_params(config, workdir)
  if params is None:
    log.warning("no tokenizer checkpoint under %s; exporting the language model only", workdir)
    return []
  return export_pixel_decoder(params, config, out)


def export_hf(config, args) -> int:
  from arm_jax.decode.loading import find_decoder_step
  from arm_jax.interop.checkpoint_params import restore_params, trained_config
  from arm_jax.interop.hf_export import export_params
  if jax.process_count() > 1:
    raise UserError("export-hf writes from one process; run it on a single host with "
                    "--config.mesh.shape=(1,-1,1) (or any mesh of that host's devices)")
  step_dir = find_decoder_step(args.workdir, args.checkpoint)
  cfg = trained_config(config, step_dir)
  params = restore_params(step_dir, cfg)
  out = args.out or os.path.join(args.workdir, "export", "hf")   # where the demo writes it
  files = export_params(params, cfg, out, text_tokenizer_path(cfg, args.workdir))
  files += _export_pixel_decoder(cfg, args.workdir, out)
  print(f"exported {step_dir} -> {out} ({len(files)} files); load it with "
        f"transformers.AutoModelForCausalLM.from_pretrained('{out}')")
  return 0
