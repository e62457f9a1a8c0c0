"""The text tokenizer's files, carried through import and export unchanged.

Text ids are the first ids of the multimodal vocabulary, so the checkpoint's tokenizer.json is
used as is (arm_jax/data/text_tokenizer.py reads it); its ids must fit below the checkpoint's
vocab_size, where the arm_jax specials begin.
"""
from __future__ import annotations

import json
import os
import shutil

from arm_jax.errors import UserError

# tokenizer.json and the companion files transformers' AutoTokenizer also reads.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model")


def max_token_id(tokenizer_json: dict) -> int:
  """Largest id a tokenizer.json can produce (model vocabulary and added tokens)."""
  vocab = (tokenizer_json.get("model") or {}).get("vocab") or {}
  ids = list(vocab.values()) if isinstance(vocab, dict) else [len(vocab) - 1]
  ids += [int(t["id"]) for t in tokenizer_json.get("added_tokens") or []]
  return max(ids, default=-1)


def _copy_companions(src_dir: str, out_dir: str) -> list[str]:
  os.makedirs(out_dir, exist_ok=True)
  copied = []
  for name in TOKENIZER_FILES:
    src = os.path.join(src_dir, name)
    if os.path.isfile(src):
      shutil.copyfile(src, os.path.join(out_dir, name))
      copied.append(name)
  return copied


def copy_hf_tokenizer(hf_dir: str, out_dir: str, text_vocab_size: int) -> str:
  """Copies the checkpoint's tokenizer files to `out_dir`; returns "tokenizer.json"."""
  path = os.path.join(hf_dir, "tokenizer.json")
  if not os.path.isfile(path):
    raise UserError(f"no tokenizer.json in {hf_dir}; the text tokenizer comes from it: save it "
                    f"with transformers AutoTokenizer.from_pretrained(...).save_pretrained(DIR)")
  with open(path, encoding="utf-8") as f:
    top = max_token_id(json.load(f))
  if top >= text_vocab_size:
    raise UserError(f"{path} has token ids up to {top} but the checkpoint's vocab_size is "
                    f"{text_vocab_size}; use the tokenizer that was saved with these weights")
  _copy_companions(hf_dir, out_dir)
  return "tokenizer.json"


def export_text_tokenizer(path: str, out_dir: str) -> list[str]:
  """A tokenizer.json (with its companions) or a sentencepiece .model -> `out_dir`."""
  if not os.path.isfile(path):
    raise UserError(f"text tokenizer {path} does not exist; set data.text_tokenizer to the "
                    f"tokenizer the model was trained with")
  if path.endswith(".json"):
    copied = _copy_companions(os.path.dirname(path), out_dir)
    if os.path.basename(path) != "tokenizer.json":
      shutil.copyfile(path, os.path.join(out_dir, "tokenizer.json"))
      copied.append("tokenizer.json")
    return copied
  os.makedirs(out_dir, exist_ok=True)
  shutil.copyfile(path, os.path.join(out_dir, "tokenizer.model"))   # sentencepiece
  return ["tokenizer.model"]
