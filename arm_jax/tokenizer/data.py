"""Image-caption batches for the teacher and the tokenizer, and the zero-shot probe set.

One linear grain chain: records -> shuffle per epoch -> {image, text ids} -> batch. Records are
the built dataset's train split (config.data.dataset: the shapes world or any image+text tfds
dataset), or scenes rendered on the fly from a seeded generator: with
data.perception_data='world' (every colour-shape pair, held-out ones included), or when the
shapes world is not built in the workdir. Either way the stream is endless, deterministic, and
its position checkpoints with the train state.

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

def excluded_pairs(config) -> frozenset:
  """(colour, shape) pairs the teacher and tokenizer never see: none with
  data.perception_data='world', else the shapes world's held-out pairs."""
  return frozenset() if config.data.perception_data == "world" else HELD_OUT


def _scene(config, rng: np.random.Generator) -> world.Scene:
  d = config.data
  return world.sample_scene(rng, d.grid, d.max_objects, exclude=excluded_pairs(config))


def _scene_record(scene: world.Scene, height: int, width: int) -> dict:
  return {"image": world.render(scene, height, width),
          "captions": list(captions.all_captions(scene).values()), "objects": scene.to_json()}


def _rendered_record(index: int, *, config, seed: int) -> dict:
  """A shapes-world record made on the fly: {image, captions (the complete one first), objects}."""
  scene = _scene(config, np.random.default_rng([seed, index]))
  size = config.data.image_size
  return _scene_record(scene, size, size)


def shape_twin(scene: world.Scene, rng: np.random.Generator,
               exclude: frozenset = HELD_OUT) -> world.Scene:
  """The same scene with every object's shape changed (never into an `exclude` pair)."""
  objects = []
  for o in scene.objects:
    options = [s for s in world.SHAPES if s != o.shape and (o.color, s) not in exclude]
    objects.append(world.Obj(options[int(rng.integers(len(options)))], o.color, o.size, o.row,
                             o.col))
  return world.Scene(tuple(objects), scene.grid)


def with_shape_twins(base: grain.MapDataset, *, grid: int, seed: int,
                     exclude: frozenset = HELD_OUT) -> grain.MapDataset:
  """Element 2k is base[k], element 2k+1 its shape twin: a hard negative that differs only in
  shapes, so a contrastive loss cannot match captions by colour and place alone. Records
  without object annotations (other datasets) are followed by an unrelated record instead."""
  def get(j: int) -> dict:
    record = base[j // 2]
    if j % 2 == 0:
      return record
    if not record.get("objects"):
      return base[j // 2 + 2**40]
    scene = world.Scene.from_json(record["objects"], grid)
    h, w = np.asarray(record["image"]).shape[:2]
    return _scene_record(shape_twin(scene, np.random.default_rng([seed, j]), exclude), h, w)
  return grain.MapDataset.range(2**62).map(get)


def perception_records(config, workdir: str):
  """The records the teacher and tokenizer train on: the train split's (data room's uniform
  records: image, captions, ...), or None to render scenes on the fly: when
  data.perception_data='world' or the shapes world is not built in this workdir."""
  if config.data.perception_data == "world":
    return None
  from arm_jax.data.build import data_dir_of
  from arm_jax.data.sources import DataError, dataset_records
  try:
    return dataset_records(config, data_dir_of(config, workdir), "train")
  except DataError as e:
    if config.data.dataset == "shapes_world" and "not built" in str(e):
      return None
    raise


def _example(record: dict, rng: np.random.Generator, *, tok, vocab: VocabLayout,
             length: int) -> dict:
  texts = record["captions"]
  text, _ = encode_texts(tok, [texts[int(rng.integers(len(texts)))]], length, vocab)
  caption, mask = encode_texts(tok, [texts[0]], length, vocab)
  return {"image": np.asarray(record["image"], np.uint8), "text": text[0],
          "caption": caption[0], "caption_mask": mask[0]}


def image_text_dataset(config, tok, *, batch_size: int, seed: int, records=None,
                       process_index: int = 0, process_count: int = 1) -> grain.MapDataset:
  """Endless batches (fields in the module docstring); each process gets its own rows.

  `records`: a random-access source of {image, captions, objects} (reshuffled every epoch), or
  None to render shapes-world scenes on the fly. With teacher.shape_twins, every other example
  is the previous one's shape twin (see with_shape_twins).
  """
  if records is None:
    ds = grain.MapDataset.range(2**62).map(
        lambda i: _rendered_record(int(i), config=config, seed=seed))
  else:
    ds = grain.MapDataset.source(records).shuffle(seed=seed).repeat()
  if config.teacher.shape_twins:
    ds = with_shape_twins(ds, grid=config.data.grid, seed=seed, exclude=excluded_pairs(config))
  vocab = VocabLayout.from_config(config.model)
  ds = ds[process_index::process_count].random_map(
      lambda r, rng: _example(r, rng, tok=tok, vocab=vocab, length=config.teacher.text_len),
      seed=seed)
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
