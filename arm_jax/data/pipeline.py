"""The training input pipeline: one grain chain per sequence format, mixed by weight, sharded.

    it = make_train_iterator(config, data_dir, codes_dir, process_index=i, process_count=n, seed=0)
    batch = next(it)   # {inputs, targets: [B/n, T] int32, loss_mask: [B/n, T] float32}
    state = it.get_state(); ...; it.set_state(state)   # or grain.checkpoint.CheckpointSave(it)

Per format: indices -> shuffle (reshuffled every epoch) -> repeat -> random_map(build row). A row
holds one sequence, or with data.pack as many sequences of its format as fit, each its own
segment (batches then also carry segment_ids and positions, formats.pack_row). The
rows of all formats are mixed with config.data.mixture weights (grain's deterministic weighted
interleave) into one global stream; global batch b is its rows [b*B, (b+1)*B), and process p of n
gets the contiguous block [p*B/n, (p+1)*B/n) of it (disjoint shards that assemble, in order,
into exactly the batch one process would load). Every random choice
(caption phrasing, question, condition dropout, packing) comes from grain's per-row generator,
which is seeded from `seed` and the row's index: the stream is a pure function of the seed, and
an iterator restored from its state continues with exactly the same batches.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys

import grain
import numpy as np

from arm_jax.config import DATA_FORMATS
from arm_jax.data import codes as codes_lib
from arm_jax.data import formats
from arm_jax.data import questions, world
from arm_jax.data.questions import CAPTION_QUESTION, QA_KINDS
from arm_jax.data.sources import (DataError, RecordSource, dataset_records, format_indices,
                                  open_records, world_params)
from arm_jax.data.text_tokenizer import TextTokenizer, load_text_tokenizer
from arm_jax.errors import UserError
from arm_jax.model.vocab import VocabLayout

FORMATS = DATA_FORMATS
_MIN_SHUFFLE = 4096
_FILL_TRIES = 3   # draws that did not fit before a packed row is closed


@dataclasses.dataclass
class Context:
  """Everything a row builder reads (picklable, so grain worker processes can hold it)."""
  vocab: VocabLayout
  tok: TextTokenizer
  records: RecordSource
  codes: object                 # index -> (codes [h, w], target codes or None)
  text: list | None             # knowledge sentences, tokenized: [int32 [n]]
  web_records: RecordSource | None
  web_codes: object | None
  seq_len: int
  cond_dropout: float
  index: dict                   # format -> example indices that have what it needs
  web_index: np.ndarray | None
  pack: bool = False            # fill rows with several sequences (segments)
  und_questions: int = 1        # questions about one image per und sequence

  def ids(self, text: str) -> np.ndarray:
    return np.asarray(self.tok.encode(text), np.int32)


def _pick(rng: np.random.Generator, items):
  return items[int(rng.integers(len(items)))]


def _budget(n_fixed: int, ctx: Context) -> int:
  """Text tokens that fit beside `n_fixed` other tokens in one row of seq_len + 1 tokens."""
  return max(0, ctx.seq_len + 1 - n_fixed)


# --- one row per format --------------------------------------------------------------------------

def _t2i(ctx: Context, records, codes, index: int, rng: np.random.Generator):
  image, _ = codes[index]
  caption = None
  if rng.random() >= ctx.cond_dropout:
    caption = ctx.ids(_pick(rng, records[index]["captions"]))[:_budget(image.size + 6, ctx)]
  return formats.t2i_sequence(ctx.vocab, caption, image)


def _und(ctx: Context, index: int, rng: np.random.Generator):
  record, (image, _) = ctx.records[index], ctx.codes[index]
  options = [(q["question"], q["answer"]) for q in record["qa"]]
  if ctx.und_questions > 1:
    return _dialogue(ctx, image, _questions(record, options, rng, ctx.und_questions))
  if record["captions"] and (not options or rng.random() < 1 / (len(options) + 1)):
    question, answer = CAPTION_QUESTION, record["captions"][0]
  else:
    question, answer = _pick(rng, options)
  answer_ids = ctx.ids(answer)[:_budget(image.size + 6, ctx)]
  question_ids = ctx.ids(question)[:_budget(image.size + 6 + len(answer_ids), ctx)]
  return formats.und_sequence(ctx.vocab, image, question_ids, answer_ids)


def _questions(record: dict, options, rng: np.random.Generator, n: int) -> list:
  """n (question, answer) pairs about the record's image, 'describe the image.' among them.

  With object annotations (the shapes world) each is drawn fresh from the scene, of a random
  kind, so an image is asked something new every epoch; otherwise the stored pairs, shuffled.
  """
  caption = [(CAPTION_QUESTION, c) for c in record["captions"][:1]]
  if not record.get("grid"):
    pool = options + caption
    return [pool[k] for k in rng.permutation(len(pool))[:n]]
  scene = world.Scene.from_json(record["objects"], record["grid"])
  kinds = tuple(k for k in QA_KINDS if scene.objects or k in ("existence", "counting"))
  kinds += ("caption",) if caption else ()
  out = []
  for _ in range(n):
    kind = kinds[int(rng.integers(len(kinds)))]
    qa = caption[0] if kind == "caption" else questions.sample_qa(scene, rng, (kind,))
    out.append(qa if kind == "caption" else (qa.question, qa.answer))
  return out


def _dialogue(ctx: Context, image, pool):
  """The (question, answer) pairs of `pool` about one image, in order, as many as fit the row."""
  pairs, used = [], image.size + 6
  for question, answer in pool:
    q, a = ctx.ids(question), ctx.ids(answer)
    if pairs and used + len(q) + len(a) + 1 > ctx.seq_len + 1:
      break
    a = a[:_budget(used, ctx)]
    q = q[:_budget(used + len(a), ctx)]
    pairs.append((q, a))
    used += len(q) + len(a) + 1
  (q, a), more = pairs[0], pairs[1:]
  return formats.und_sequence(ctx.vocab, image, q, a, more)


def _edit(ctx: Context, index: int, rng: np.random.Generator):
  record, (source, target) = ctx.records[index], ctx.codes[index]
  drop_image, drop_text = formats.drop_edit_conditions(rng, ctx.cond_dropout)
  instruction = None if drop_text else ctx.ids(_pick(rng, record["instructions"]))[
      :_budget(source.size + target.size + 11, ctx)]
  return formats.edit_sequence(ctx.vocab, None if drop_image else source, instruction, target)


def _text(ctx: Context, index: int, rng: np.random.Generator):
  """One knowledge sentence (_row fills a text row with more)."""
  del rng
  return formats.text_sequence(ctx.vocab, ctx.text[int(index)])


def _interleaved(ctx: Context, index: int, rng: np.random.Generator):
  """Caption/image pairs of several examples in one document, as many as fit."""
  pairs, used, i = [], 2, index
  while True:
    image, _ = ctx.codes[i]
    caption = ctx.ids(_pick(rng, ctx.records[i]["captions"]))
    need = len(caption) + image.size + 4
    if pairs and used + need > ctx.seq_len + 1:
      return formats.interleaved_sequence(ctx.vocab, pairs)
    pairs.append((caption[:_budget(used + image.size + 4, ctx)], image))
    used += need
    i = int(_pick(rng, ctx.index["t2i"]))


def _web(ctx: Context, index: int, rng: np.random.Generator):
  return _t2i(ctx, ctx.web_records, ctx.web_codes, index, rng)


# --- assembling ---------------------------------------------------------------------------------

def _row(ctx: Context, fmt: str, build, index: int, rng: np.random.Generator) -> dict:
  """The row for `index`: its sequence, then (text rows always, every format with data.pack)
  random others of the same format while they fit."""
  first = build(ctx, index, rng)
  if not (ctx.pack or fmt == "text"):
    return formats.to_row(ctx.vocab, *first, ctx.seq_len)
  # Packed, a sequence of L tokens takes L - 1 row positions (it is shifted on its own);
  # concatenated (text rows without data.pack), L positions of the seq_len + 1 tokens.
  cost = (lambda seq: len(seq[0]) - 1) if ctx.pack else (lambda seq: len(seq[0]))
  room = ctx.seq_len if ctx.pack else ctx.seq_len + 1
  pool = _indices(fmt, ctx)
  sequences, used, misses = [first], cost(first), 0
  while misses < _FILL_TRIES and used < room:
    nxt = build(ctx, int(_pick(rng, pool)), rng)
    if used + cost(nxt) > room:   # too long for what is left: draw another
      misses += 1
      continue
    sequences.append(nxt)
    used += cost(nxt)
  if ctx.pack:
    return formats.pack_row(ctx.vocab, sequences, ctx.seq_len)
  return formats.to_row(ctx.vocab, *formats.concat(sequences), ctx.seq_len)


def _weigh(row: dict, weight: float) -> dict:
  return dict(row, loss_mask=row["loss_mask"] * np.float32(weight))


def _indices(fmt: str, ctx: Context) -> np.ndarray:
  """Example indices a format draws from (those that have what it needs)."""
  if fmt == "text":
    return np.arange(len(ctx.text))
  if fmt == "web":
    return ctx.web_index
  idx = ctx.index["t2i" if fmt == "interleaved" else fmt]
  if not len(idx):
    what = {"edit": "edit triplets", "und": "captions or QA"}.get(fmt, "captions")
    raise DataError(f"dataset {ctx.records.name} has no {what} for '{fmt}' rows; drop "
                    f"'{fmt}' from data.mixture")
  return idx


_BUILDERS = {"t2i": lambda ctx, i, rng: _t2i(ctx, ctx.records, ctx.codes, i, rng), "und": _und,
             "edit": _edit, "text": _text, "interleaved": _interleaved, "web": _web}


def _check_fits(fmt: str, ctx: Context) -> None:
  """A row must hold a whole image (two for edit): fail at start-up, not mid-training."""
  codes = ctx.web_codes if fmt == "web" else ctx.codes
  if fmt == "text" or not len(codes):
    return
  image, target = codes[0]
  need = {"edit": image.size + (target.size if target is not None else image.size) + 11}.get(
      fmt, image.size + 6)
  if need > ctx.seq_len + 1:
    raise UserError(f"train.seq_len={ctx.seq_len} is too short for '{fmt}' rows of "
                    f"{image.shape[0]}x{image.shape[1]} codes (need at least {need - 1}); raise "
                    f"train.seq_len or drop '{fmt}' from data.mixture")


def _open_text(config, data_dir: str, tok: TextTokenizer) -> list[np.ndarray]:
  """The knowledge split, tokenized once (150 short sentences)."""
  from arm_jax.data import shapes_world
  from arm_jax.data.sources import check_readable, open_builder, open_split
  path = os.path.join(data_dir, "shapes_world", shapes_world.builder_config(
      config, text_only=True).name)
  source = open_split(open_builder(path, data_dir), "train")
  check_readable(source, f"the knowledge split in {path}")
  return [np.asarray(tok.encode(source[i]["text"].decode("utf-8")), np.int32)
          for i in range(len(source))]


def _open_codes(records: RecordSource, codes_dir: str, split: str, encode):
  if encode is not None:
    return codes_lib.OnTheFlyCodes(encode, records)
  return codes_lib.CodesSource(codes_lib.codes_path(codes_dir, records, split), records)


def build_context(config, data_dir: str, codes_dir: str, *, split: str = "train",
                  encode=None) -> Context:
  """Opens everything the mixture needs; one-line errors for anything missing."""
  d = config.data
  names = [name for name, _ in d.mixture]
  images = encode is not None   # precomputed codes: skip decoding the images
  records = dataset_records(config, data_dir, split, images=images)
  web_records = web_codes = None
  if "web" in names:
    if d.web_dataset:
      web_records = open_records(d.web_dataset, data_dir, split, image_key=d.web_image_key,
                                 text_key=d.web_text_key, images=images,
                                 params=world_params(config))
    else:
      logging.warning("data.web_dataset is empty: 'web' rows are image-text pairs of %s",
                      d.dataset)
      web_records = records
  codes = _open_codes(records, codes_dir, split, encode)
  if web_records is records:
    web_codes = codes
  elif web_records is not None:
    web_codes = _open_codes(web_records, codes_dir, split, encode)
  tok = load_text_tokenizer(config, data_dir)
  return Context(
      vocab=VocabLayout.from_config(config.model), tok=tok, records=records, codes=codes,
      text=_open_text(config, data_dir, tok) if "text" in names else None,
      web_records=web_records, web_codes=web_codes, seq_len=config.train.seq_len,
      cond_dropout=d.cond_dropout, index=format_indices(records, split),
      web_index=None if web_records is None else format_indices(web_records, split)["t2i"],
      pack=d.pack, und_questions=d.und_questions)


def check_mixture(mixture) -> None:
  for name, weight in mixture:
    if name not in FORMATS:
      raise UserError(f"unknown format '{name}' in data.mixture; known formats: "
                      f"{', '.join(FORMATS)}")
    if not weight > 0:
      raise UserError(f"data.mixture weight of '{name}' is {weight}; weights must be > 0 "
                      f"(drop the format instead)")


def make_dataset(config, ctx: Context, *, process_index: int = 0,
                 process_count: int = 1, seed: int = 0) -> grain.MapDataset:
  """Infinite MapDataset of this process's batches (the module docstring's chain).

  With data.warmup_steps, the first that many batches come from data.warmup_mixture (a
  curriculum), the rest from data.mixture from its own start.
  """
  d = config.data
  batch = config.train.batch_size
  if batch % process_count:
    raise UserError(f"train.batch_size ({batch}) must divide by the number of processes "
                    f"({process_count})")
  # Blocks of batch/n rows; global batch b is blocks b*n .. b*n+n-1, process p takes block b*n+p:
  # the contiguous rows jax.make_array_from_process_local_data expects from it.
  def batches(mixture, stream):
    rows = _mixed_rows(config, ctx, mixture, seed * 1009 + stream)
    return rows.batch(batch // process_count)[process_index::process_count]
  main = batches(d.mixture, 0)
  if not d.warmup_steps:
    return main
  first = batches(d.warmup_mixture, 500)
  return grain.MapDataset.range(sys.maxsize).map(
      functools.partial(_phase, first=first, then=main, at=int(d.warmup_steps)))


def _phase(i: int, *, first, then, at: int):
  return first[i] if i < at else then[i - at]


def _mixed_rows(config, ctx: Context, mixture, seed: int) -> grain.MapDataset:
  """Infinite MapDataset of rows, each format's chain mixed by `mixture` weight."""
  check_mixture(mixture)
  components, weights = [], []
  loss_weights = dict(config.data.loss_weights)
  for k, (fmt, weight) in enumerate(mixture):
    _check_fits(fmt, ctx)
    idx = _indices(fmt, ctx)
    build = _BUILDERS[fmt]
    # grain's index shuffle costs ~0.8 ms per element on a 40-element source and ~15 us from a
    # few thousand on; small sources are tiled (each element equally often per epoch).
    ds = grain.MapDataset.source(np.tile(idx, -(-_MIN_SHUFFLE // max(1, len(idx)))))
    if config.data.shuffle:
      ds = ds.shuffle(seed=(seed + 2 * k) % 2**32)
    ds = ds.repeat().random_map(
        lambda i, rng, fmt=fmt, build=build: _row(ctx, fmt, build, int(i), rng),
        seed=(seed + 2 * k + 1) % 2**32)
    if loss_weights.get(fmt, 1.0) != 1.0:
      ds = ds.map(functools.partial(_weigh, weight=float(loss_weights[fmt])))
    components.append(ds)
    weights.append(float(weight))
  return grain.MapDataset.mix(components, weights)


def make_train_iterator(config, data_dir: str, codes_dir: str, *, split: str = "train",
                        process_index: int = 0, process_count: int = 1, seed: int = 0,
                        encode=None):
  """A checkpointable grain iterator of {inputs, targets, loss_mask} batches for this process.

  `encode` (optional): a batched image encoder used per example instead of precomputed codes in
  `codes_dir` (the hook for pipelines that take images; slow, for tests and small runs).
  Save/restore its position with grain.checkpoint.CheckpointSave / CheckpointRestore.
  """
  ctx = build_context(config, data_dir, codes_dir, split=split, encode=encode)
  ds = make_dataset(config, ctx, process_index=process_index,
                    process_count=process_count, seed=seed)
  d = config.data
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=max(1, d.prefetch),
                                               prefetch_buffer_size=max(1, d.prefetch)))
  if d.worker_count > 0:
    from absl import flags
    if not flags.FLAGS.is_parsed():   # grain's workers read absl flags; the CLI does not parse them
      flags.FLAGS.mark_as_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=d.worker_count))
  return iter(it_ds)
