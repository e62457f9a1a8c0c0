"""`arm-jax`: one subcommand per pipeline stage. Thin: parse, load the config, call the library.

Every subcommand takes a recipe (`--config configs/shapes_tiny.py`, or just `shapes_tiny`) and
any number of overrides (`--config.train.steps=100`). Library imports happen after parsing so
`--help` is instant.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from arm_jax.config import load_config
from arm_jax.errors import Preempted, UserError

EPILOG = """\
Config overrides: any key of the recipe, e.g. --config.train.steps=100 --config.mesh.shape=(2,2,2).
An unknown key is refused with the closest valid one named.

Pipeline order (what `arm-jax demo` runs): build-data -> train-teacher -> train-tokenizer ->
tokenizer metrics -> tokenize-dataset -> pretrain -> eval (SFT) -> rl -> eval (RL) -> export-hf ->
report.
"""


def _arg(*names, **kw):
  return names, kw


_WORKDIR = _arg("--workdir", default="runs/default",
                help="run directory: data, checkpoints, metrics, report (default: runs/default)")
_CKPT = _arg("--checkpoint", default="",
             help="checkpoint dir or step dir to load (default: the latest under --workdir)")
_OUT = _arg("--out", default="", help="output path (default: under --workdir)")

# name -> (handler "module:function", one-line help, extra arguments)
COMMANDS = {
    "demo": ("arm_jax.demo:run", "the whole pipeline at toy scale, writing report.md",
             [_WORKDIR, _arg("--fresh", action="store_true",
                             help="ignore finished stages in --workdir and redo everything")]),
    "build-data": ("arm_jax.data.build:run",
                   "build the shapes world (or import a folder) and train the text tokenizer",
                   [_WORKDIR,
                    _arg("--from", dest="from_dir", default="", metavar="DIR",
                         help="import a folder of images with captions.jsonl (+ optional qa.jsonl,"
                              " edits.jsonl) instead of rendering the shapes world"),
                    _arg("--name", default="",
                         help="dataset name for --from (default: folder_<DIR name>)")]),
    "train-teacher": ("arm_jax.tokenizer.stages:run_train_teacher",
                      "train the mini-SigLIP teacher (or import teacher.hf_checkpoint)", [_WORKDIR]),
    "train-tokenizer": ("arm_jax.tokenizer.stages:run_train_tokenizer",
                        "train the visual tokenizer (FSQ/VQ, four losses), then print its metrics",
                        [_WORKDIR, _arg("--skip-metrics", action="store_true",
                                        help="do not evaluate on held-out images afterwards")]),
    "tokenizer-ablation": ("arm_jax.tokenizer.stages:run_ablation",
                           "train one tokenizer per loss subset (tokenizer.ablation); write the "
                           "zero-shot / PSNR / code-usage table", [_WORKDIR]),
    "tokenize-dataset": ("arm_jax.tokenizer.stages:run_tokenize_dataset",
                         "encode every split's images into visual codes (<workdir>/codes)",
                         [_WORKDIR]),
    "decode": ("arm_jax.tokenizer.stages:run_decode", "visual codes -> PNG images",
               [_WORKDIR, _arg("--codes", default="", metavar="FILE",
                               help=".npy or .json of [N, h, w] codes (default: the tokenized "
                                    "--split)"),
                _arg("--split", default="validation", help="tokenized split to decode"),
                _arg("--count", type=int, default=8, help="examples of --split (default 8)"),
                _arg("--out", default="", help="output dir (default: <workdir>/decoded)")]),
    "rl": ("arm_jax.rl.stages:run", "GRPO RL on T2I and editing: rl.stages from the pretrained "
           "checkpoint (resumable)", [_WORKDIR]),
    "rl-study": ("arm_jax.rl.study:run", "cross-task synergy study: SFT / T2I-RL / Edit-RL / "
                 "T2I->Edit / +joint over rl.seeds, scored by the eval suite (Table 8)",
                 [_WORKDIR, _arg("--out", default="",
                                 help="output dir (default: <workdir>/rl_study)")]),
    "pretrain": ("arm_jax.train.pretrain:run", "AR pretraining over the multimodal mixture",
                 [_WORKDIR, _arg("--init", default="",
                                 help="start from these weights (an import-hf output dir)")]),
    "aot": ("arm_jax.aot:run", "compile the steps for a TPU slice on this host: memory vs HBM, "
            "FLOPs, predicted step time",
            [_arg("--topology", required=True,
                  help="v5p-64, v5p:2x4x4, v5litepod-16, v6e-16, ... (GPUs, e.g. h100-8: "
                       "analytic memory estimate only)"),
             _arg("--mfu", type=float, default=0.5,
                  help="assumed MFU for the predicted step time (default 0.5)"),
             _arg("--steps", default="pretrain,rl,decode",
                  help="which step functions to compile (default: pretrain,rl,decode)")]),
    "import-hf": ("arm_jax.interop.commands:import_hf",
                  "import Qwen2/Qwen2.5/Llama safetensors as initial weights (for pretrain --init)",
                  [_WORKDIR, _arg("--hf", required=True, metavar="DIR",
                                  help="Hugging Face model dir: config.json, *.safetensors, "
                                       "tokenizer.json"),
                   _arg("--out", default="", help="output dir (default: <workdir>/init)")]),
    "export-hf": ("arm_jax.interop.commands:export_hf",
                  "export a checkpoint as a Hugging Face model directory (PyTorch/transformers)",
                  [_WORKDIR, _CKPT, _arg("--out", default="",
                                         help="output dir (default: <workdir>/export/hf)")]),
    "generate": ("arm_jax.decode.commands:generate", "text-to-image: write PNGs for a prompt",
                 [_WORKDIR, _CKPT, _arg("--prompt", required=True, help="the caption"),
                  _arg("--n", type=int, default=1, help="images to draw (default 1)"),
                  _arg("--seed", type=int, default=0, help="sampling seed (default 0)"),
                  _arg("--out", default="", help="output dir (default: <workdir>/samples)")]),
    "edit": ("arm_jax.decode.commands:edit", "instruction-guided editing of an image (PNG out)",
             [_WORKDIR, _CKPT, _arg("--image", required=True, help="RGB PNG/JPEG to edit"),
              _arg("--instruction", required=True, help="what to change"),
              _arg("--seed", type=int, default=0, help="sampling seed (default 0)"),
              _arg("--out", default="",
                   help="output PNG (default: <workdir>/edits/<name>_edited.png)")]),
    "ask": ("arm_jax.decode.commands:ask", "image understanding: print the answer to a question",
            [_WORKDIR, _CKPT, _arg("--image", required=True, help="RGB PNG/JPEG"),
             _arg("--question", required=True, help="the question")]),
    "eval": ("arm_jax.eval.command:run", "score a checkpoint on the GenEval/WISE/GEdit/POPE "
             "analogues; write report.md, metrics.json, figures and benchmark-format outputs",
             [_WORKDIR, _CKPT,
              _arg("--out", default="", help="output dir (default: <workdir>/eval)"),
              _arg("--tasks", default="geneval,wise,edit,und",
                   help="comma-separated: geneval,wise,edit,und (default: all)"),
              _arg("--tokenizer-metrics", default="", metavar="JSON",
                   help="a JSON object of visual-tokenizer metrics to add to the report")]),
}

# Commands that never join a multi-host job (pure host-side work).
LOCAL_ONLY = ("build-data", "aot", "import-hf")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="arm-jax", description=__doc__.split("\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  for name, (_, help_text, extra) in COMMANDS.items():
    p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/shapes_tiny.py",
                   help="recipe file or name under configs/ (default: shapes_tiny)")
    for names, kw in extra:
      p.add_argument(*names, **kw)
  return parser


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  overrides = [a for a in argv if a.startswith("--config.")]
  rest = [a for a in argv if not a.startswith("--config.")]
  parser = build_parser()
  args = parser.parse_args(rest)
  if not args.command:
    parser.print_help()
    return 2
  # orbax (tensorstore) only opens absolute checkpoint paths; `--workdir runs/demo` is relative.
  for name in ("workdir", "checkpoint"):
    if getattr(args, name, ""):
      setattr(args, name, os.path.abspath(getattr(args, name)))
  try:
    config = load_config(args.config, overrides)
    if args.command not in LOCAL_ONLY:
      from arm_jax import distributed
      distributed.initialize()   # multi-host: before any other jax call
    module_name, fn_name = COMMANDS[args.command][0].split(":")
    handler = getattr(importlib.import_module(module_name), fn_name)
    result = handler(config, args)
  except UserError as e:
    print(f"arm-jax {args.command}: error: {e}", file=sys.stderr)
    return 2
  except Preempted as e:
    print(f"arm-jax {args.command}: {e}", file=sys.stderr)
    return 0
  return int(result or 0)


if __name__ == "__main__":
  sys.exit(main())
