"""Image-caption batches for the teacher and the tokenizer, and the zero-shot probe set.

One linear grain chain: index -> scene -> {image, text ids} -> batch. Scenes are rendered on the
fly from a seeded generator (a pure function of (seed, index)), so the stream is endless,
deterministic, and its position checkpoints with the train state.

Text ids follow the multimodal vocabulary (model/vocab.py): the text tokenizer's ids, then
`<eos>`, then `<pad>` to `teacher.text_len` (SigLIP pads to a fixed length and pools the last
position). Batch fields:
  image        [b, H, W, 3] uint8
  text         [b, T] int32   one caption in a random phrasing (contrastive pairs)
  caption      [b, T] int32   the canonical full caption (what the captioner writes)
  caption_mask [b, T] float32 1 on caption tokens and its <eos>
"""
from __future__ import annotations

import os
from typing import Sequence

import grain
import numpy as np

from arm_jax.data import captions, world
from arm_jax.model.vocab import VocabLayout

# The shapes world's held-out (colour, shape) pairs never appear in training data.
try:
  from arm_jax.data.shapes_examples import HELD_OUT
except ImportError:  # older data package: nothing held out
  HELD_OUT = frozenset()


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------

def text_tokenizer(config, workdir: str):
  """The corpus text tokenizer build-data trained; else one trained here on scene captions.

  The fallback (for runs without build-data, e.g. tests) lives in <workdir>/tokenizer/.
  """
  from arm_jax.data import text_tokenizer as tt
  data_dir = config.data.data_dir or os.path.join(workdir, "data")
  if config.data.text_tokenizer or os.path.exists(tt.corpus_tokenizer_path(config, data_dir)):
    return tt.load_text_tokenizer(config, data_dir)
  path = os.path.join(workdir, "tokenizer", f"captions_{config.model.text_vocab_size}.model")
  if not os.path.exists(path):
    rng = np.random.default_rng(config.data.seed)
    corpus = []
    for _ in range(2000):
      scene = world.sample_scene(rng, config.data.grid, config.data.max_objects)
      corpus += captions.all_captions(scene).values()
    tt.train_sentencepiece(corpus, config.model.text_vocab_size, path)
  return tt.SentencePieceTokenizer(path)


def encode_texts(tok, texts: Sequence[str], length: int,
                 vocab: VocabLayout) -> tuple[np.ndarray, np.ndarray]:
  """texts -> (ids [n, length] int32: tokens, <eos>, <pad>...; mask [n, length] float32)."""
  ids = np.full((len(texts), length), vocab.pad, np.int32)
  mask = np.zeros((len(texts), length), np.float32)
  for i, text in enumerate(texts):
    row = list(tok.encode(text))[: length - 1] + [vocab.eos]
    ids[i, :len(row)] = row
    mask[i, :len(row)] = 1.0
  return ids, mask


# ---------------------------------------------------------------------------------------------
# Training stream
# ---------------------------------------------------------------------------------------------

def _scene(config, rng: np.random.Generator) -> world.Scene:
  d = config.data
  return world.sample_scene(rng, d.grid, d.max_objects, exclude=HELD_OUT)


def _example(index: int, *, config, tok, vocab: VocabLayout, seed: int) -> dict:
  rng = np.random.default_rng([seed, index])
  scene = _scene(config, rng)
  length = config.teacher.text_len
  text, _ = encode_texts(tok, [captions.caption(scene, rng)], length, vocab)
  caption, mask = encode_texts(tok, [captions.full_caption(scene)], length, vocab)
  size = config.data.image_size
  return {"image": world.render(scene, size, size), "text": text[0], "caption": caption[0],
          "caption_mask": mask[0]}


def image_text_dataset(config, tok, *, batch_size: int, seed: int, process_index: int = 0,
                       process_count: int = 1) -> grain.MapDataset:
  """Endless batches (fields in the module docstring); each process gets its own rows."""
  vocab = VocabLayout.from_config(config.model)
  ds = grain.MapDataset.range(2**31 - 1)[process_index::process_count]
  ds = ds.map(lambda i: _example(int(i), config=config, tok=tok, vocab=vocab, seed=seed))
  return ds.batch(batch_size // process_count, drop_remainder=True)


# ---------------------------------------------------------------------------------------------
# Held-out probes
# ---------------------------------------------------------------------------------------------

def heldout_images(config, n: int, seed: int) -> np.ndarray:
  """[n, H, W, 3] uint8 scenes from a stream disjoint from training (another seed)."""
  size = config.data.image_size
  rng = np.random.default_rng([seed, 7919])
  return np.stack([world.render(_scene(config, rng), size, size) for _ in range(n)])


def zero_shot_set(config, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Single-object images with their labels: ([n, H, W, 3] uint8, colour [n], shape [n] int).

  Labels index world.COLORS and world.SHAPES; all 18 pairs appear, held-out ones included.
  """
  size, grid = config.data.image_size, config.data.grid
  rng = np.random.default_rng([seed, 104729])
  colors, shapes = list(world.COLORS), list(world.SHAPES)
  images, c_lab, s_lab = [], [], []
  for i in range(n):
    c, s = i % len(colors), (i // len(colors)) % len(shapes)
    obj = world.Obj(shapes[s], colors[c], world.SIZES[int(rng.integers(2))],
                    int(rng.integers(grid)), int(rng.integers(grid)))
    images.append(world.render(world.Scene((obj,), grid), size, size))
    c_lab.append(c)
    s_lab.append(s)
  return np.stack(images), np.asarray(c_lab), np.asarray(s_lab)


def class_prompts() -> tuple[list[str], np.ndarray, np.ndarray]:
  """The 18 zero-shot prompts 'a red circle.' with their (colour, shape) label indices."""
  prompts, c_lab, s_lab = [], [], []
  for s, shape in enumerate(world.SHAPES):
    for c, color in enumerate(world.COLORS):
      prompts.append(f"a {color} {shape}.")
      c_lab.append(c)
      s_lab.append(s)
  return prompts, np.asarray(c_lab), np.asarray(s_lab)
