"""Text-to-image with an exported arm_jax model, in PyTorch only (no JAX).

    arm-jax export-hf --workdir runs/demo        # -> runs/demo/export/hf
    python examples/generate_torch.py runs/demo/export/hf "a red circle left of a blue square" out.png

Needs torch, transformers and Pillow (plus `tokenizers` for a tokenizer.json or `sentencepiece`
for a tokenizer.model, whichever the export holds). The export directory has the language model
(config.json + safetensors, loaded by transformers), arm_jax_vocab.json (where specials and image
codes sit in the vocabulary) and the visual tokenizer's pixel decoder (pixel_decoder.py/.json/
.safetensors).

The sequence is the one training used:  <bos> caption <boi> <h_H> <w_W>  then H*W image codes,
sampled with logits restricted to image codes and classifier-free guidance against
<bos> <uncond> <boi> <h_H> <w_W>:  guided = uncond + scale * (cond - uncond).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

import numpy as np
import torch
import transformers


def load_text_tokenizer(export_dir: str):
  """caption -> ids, from the export's tokenizer.json or sentencepiece tokenizer.model."""
  path = os.path.join(export_dir, "tokenizer.json")
  if os.path.isfile(path):
    import tokenizers
    tok = tokenizers.Tokenizer.from_file(path)
    return lambda text: tok.encode(text, add_special_tokens=False).ids
  path = os.path.join(export_dir, "tokenizer.model")
  if os.path.isfile(path):
    import sentencepiece
    sp = sentencepiece.SentencePieceProcessor(model_file=path)
    return lambda text: list(sp.encode(text))
  sys.exit(f"{export_dir} has no tokenizer.json or tokenizer.model; export with the text "
           f"tokenizer the model was trained with")


def load_pixel_decoder(export_dir: str):
  path = os.path.join(export_dir, "pixel_decoder.py")
  if not os.path.isfile(path):
    sys.exit(f"{export_dir} has no pixel_decoder.py; export a run that trained the visual "
             f"tokenizer (arm-jax train-tokenizer) so export-hf writes the decoder")
  spec = importlib.util.spec_from_file_location("pixel_decoder", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.PixelDecoder.from_pretrained(export_dir)


class Stream:
  """One prompt fed through the LM with a KV cache; `logits` is the next-token distribution."""

  def __init__(self, lm, ids: list[int]):
    self.lm = lm
    out = lm(input_ids=torch.tensor([ids]), use_cache=True)
    self.past, self.logits = out.past_key_values, out.logits[0, -1].float()

  def feed(self, token: int) -> None:
    out = self.lm(input_ids=torch.tensor([[token]]), past_key_values=self.past, use_cache=True)
    self.past, self.logits = out.past_key_values, out.logits[0, -1].float()


@torch.no_grad()
def generate_codes(lm, layout: dict, caption_ids: list[int], grid: int, *, cfg_scale: float,
                   temperature: float, top_k: int, seed: int) -> np.ndarray:
  """Samples a [grid, grid] code grid (temperature 0 = greedy)."""
  s = layout["specials"]
  h_tok = layout["height_token_1"] + grid - 1
  w_tok = layout["width_token_1"] + grid - 1
  head = [s["<boi>"], h_tok, w_tok]
  cond = Stream(lm, [s["<bos>"]] + list(caption_ids) + head)
  uncond = Stream(lm, [s["<bos>"], s["<uncond>"]] + head) if cfg_scale != 1.0 else None
  n = layout.get("codebook_size", layout["image_size"])
  gen = torch.Generator().manual_seed(seed)
  codes = []
  for cell in range(grid * grid):
    # A cell-addressed vocabulary holds one copy of the codebook per grid cell.
    lo = layout["image_offset"] + (cell * n if layout.get("cell_addressed") else 0)
    logits = cond.logits[lo:lo + n]
    if uncond is not None:
      u = uncond.logits[lo:lo + n]
      logits = u + cfg_scale * (logits - u)
    if temperature <= 0:
      code = int(torch.argmax(logits))
    else:
      logits = logits / temperature
      if top_k > 0:
        kth = torch.topk(logits, min(top_k, n)).values[-1]
        logits = torch.where(logits >= kth, logits, torch.tensor(-float("inf")))
      code = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
    codes.append(code)
    for stream in (cond, uncond):
      if stream is not None:
        stream.feed(lo + code)
  return np.asarray(codes, np.int64).reshape(grid, grid)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("export_dir")
  p.add_argument("prompt")
  p.add_argument("out_png")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
  p.add_argument("--top-k", type=int, default=0, help="0 = off")
  p.add_argument("--cfg-scale", type=float, default=None,
                 help="guidance scale (default: the one the model was trained for)")
  p.add_argument("--save-codes", default="", help="also write the code grid here (.npy)")
  args = p.parse_args(argv)
  with open(os.path.join(args.export_dir, "arm_jax_vocab.json")) as f:
    layout = json.load(f)
  encode = load_text_tokenizer(args.export_dir)
  decoder = load_pixel_decoder(args.export_dir)
  lm = transformers.AutoModelForCausalLM.from_pretrained(args.export_dir,
                                                         dtype=torch.float32).eval()
  scale = layout["cfg_scale"] if args.cfg_scale is None else args.cfg_scale
  codes = generate_codes(lm, layout, encode(args.prompt), decoder.grid, cfg_scale=scale,
                         temperature=args.temperature, top_k=args.top_k, seed=args.seed)
  if args.save_codes:
    np.save(args.save_codes, codes)
  image = decoder(torch.from_numpy(codes)[None])[0].numpy()
  from PIL import Image
  Image.fromarray(image).save(args.out_png)
  print(f"wrote {args.out_png} ({image.shape[1]}x{image.shape[0]}) from {codes.size} codes")
  return 0


if __name__ == "__main__":
  sys.exit(main())
