"""Sequence formats: token layouts, loss masks, condition dropout, padding to training rows.

Layouts (ids from VocabLayout; `codes` are an image's [h, w] visual codes):
  t2i   <bos> caption <boi> <h_H> <w_W> codes <eoi> <eos>            loss: <h_H> .. <eos>
  und   <bos> <boi> <h_H> <w_W> codes <eoi> question answer <eos>   loss: answer, <eos>
        [question answer <eos> ...]    more questions about the same image (data.und_questions)
  edit  <bos> <edit> instruction <boi> <h> <w> source <eoi> <boi> <h> <w> target <eoi> <eos>
                                                                     loss: target <h> .. <eos>
  text  <bos> text <eos> [<bos> text <eos> ...]                      loss: everything after <bos>
  interleaved  <bos> caption image caption image ... <eos>          loss: everything after <bos>
A dropped condition (classifier-free guidance) is one <uncond> in its place.

The edit layout puts the instruction first so that the source and target images sit back to back:
target code k is always the same distance (h*w + 4 tokens) after source code k, whatever the
instruction's length, and copying an unchanged cell is a fixed-offset lookup under RoPE. With the
instruction between the images the offset varied, and a 4-layer model trained on edits alone
copied far fewer object cells (see `edit_prompt`).

The *_prompt functions are the prefixes a sampler feeds (up to and including <w_W>); training
rows are built from the same functions, so conditional and unconditional rows at decode time
match what training saw. A sequence here is (tokens int32 [L], is_target float32 [L]): is_target
marks the tokens whose prediction counts. `to_row` shifts it into the training contract;
`pack_row` puts several sequences in one row, each its own segment (attention stays inside a
segment and positions restart at 0, so a packed sequence trains exactly as it would alone).
"""
from __future__ import annotations

import numpy as np

from arm_jax.model.vocab import VocabLayout


def _ids(*parts) -> np.ndarray:
  return np.concatenate([np.asarray(p, np.int32).reshape(-1) for p in parts]) if parts else \
      np.zeros(0, np.int32)


def image_block(vocab: VocabLayout, codes_hw: np.ndarray) -> np.ndarray:
  """[h, w] codes -> <boi> <h_H> <w_W> ids <eoi>, int32 [h*w + 4]."""
  return vocab.image_tokens(np.asarray(codes_hw))


def _grid_open(vocab: VocabLayout, grid_hw: tuple[int, int]) -> list[int]:
  return [vocab.boi, vocab.height_token(grid_hw[0]), vocab.width_token(grid_hw[1])]


# --- prompts (shared with the sampler) ---------------------------------------------------------

def t2i_prompt(vocab: VocabLayout, caption_ids, grid_hw: tuple[int, int]) -> np.ndarray:
  """<bos> caption <boi> <h_H> <w_W>; caption_ids None -> <uncond>. int32 [P]."""
  cond = [vocab.uncond] if caption_ids is None else caption_ids
  return _ids([vocab.bos], cond, _grid_open(vocab, grid_hw))


def und_prompt(vocab: VocabLayout, codes_hw: np.ndarray, question_ids) -> np.ndarray:
  """<bos> <boi> <h> <w> codes <eoi> question: the answer follows. int32 [P]."""
  return _ids([vocab.bos], image_block(vocab, codes_hw), question_ids)


def edit_prompt(vocab: VocabLayout, source_codes_hw, instruction_ids,
                grid_hw: tuple[int, int]) -> np.ndarray:
  """<bos> <edit> instruction source-image <boi> <h_H> <w_W>. int32 [P].

  source_codes_hw None -> <uncond> for the image; instruction_ids None -> <uncond> for the text
  (both None: the fully unconditional row of dual text/image guidance).
  """
  image = [vocab.uncond] if source_codes_hw is None else image_block(vocab, source_codes_hw)
  text = [vocab.uncond] if instruction_ids is None else instruction_ids
  return _ids([vocab.bos, vocab.edit], text, image, _grid_open(vocab, grid_hw))


# --- training sequences ------------------------------------------------------------------------

def _seq(prefix, target) -> tuple[np.ndarray, np.ndarray]:
  prefix, target = _ids(prefix), _ids(target)
  mask = np.concatenate([np.zeros(len(prefix), np.float32), np.ones(len(target), np.float32)])
  return np.concatenate([prefix, target]), mask


def t2i_sequence(vocab: VocabLayout, caption_ids, codes_hw: np.ndarray):
  """Loss on the shape tokens, the codes, <eoi> and <eos>."""
  block = image_block(vocab, codes_hw)
  return _seq(_ids([vocab.bos], [vocab.uncond] if caption_ids is None else caption_ids,
                   block[:1]), _ids(block[1:], [vocab.eos]))


def und_sequence(vocab: VocabLayout, codes_hw: np.ndarray, question_ids, answer_ids,
                 more=()):
  """Loss on the answer and <eos>; `more` [(question_ids, answer_ids), ...] follow, each
  answer and its <eos> a target too (a dialogue about one image: one image's tokens serve
  several questions)."""
  parts = [_seq(und_prompt(vocab, codes_hw, question_ids), _ids(answer_ids, [vocab.eos]))]
  parts += [_seq(q, _ids(a, [vocab.eos])) for q, a in more]
  return concat(parts)


def edit_sequence(vocab: VocabLayout, source_codes_hw, instruction_ids, target_codes_hw):
  """Loss on the target image after its <boi> (shape tokens, codes, <eoi>) and <eos>."""
  block = image_block(vocab, target_codes_hw)
  prompt = edit_prompt(vocab, source_codes_hw, instruction_ids, target_codes_hw.shape)
  return _seq(prompt[:-2], _ids(block[1:], [vocab.eos]))


def text_sequence(vocab: VocabLayout, text_ids):
  """Loss on the text and <eos>."""
  return _seq([vocab.bos], _ids(text_ids, [vocab.eos]))


def interleaved_sequence(vocab: VocabLayout, pairs):
  """pairs: [(caption_ids, codes_hw), ...] -> one document; loss on everything after <bos>."""
  body = [_ids(c, image_block(vocab, codes)) for c, codes in pairs]
  return _seq([vocab.bos], _ids(*body, [vocab.eos]))


def concat(sequences) -> tuple[np.ndarray, np.ndarray]:
  """Packs whole sequences one after another (the text format fills rows this way)."""
  tokens, masks = zip(*sequences)
  return np.concatenate(tokens), np.concatenate(masks)


# --- condition dropout -------------------------------------------------------------------------

def drop_edit_conditions(rng: np.random.Generator, rate: float) -> tuple[bool, bool]:
  """(drop_image, drop_text): each alone with probability rate/3, both with rate/3."""
  u = rng.random()
  if u < rate / 3:
    return False, True
  if u < 2 * rate / 3:
    return True, False
  return (True, True) if u < rate else (False, False)


# --- rows --------------------------------------------------------------------------------------

def to_row(vocab: VocabLayout, tokens: np.ndarray, is_target: np.ndarray,
           seq_len: int) -> dict[str, np.ndarray]:
  """(tokens [L], is_target [L]) -> {inputs, targets: [seq_len] int32, loss_mask: [seq_len] f32}.

  inputs = tokens[:-1], targets = tokens[1:], padded at the end with <pad> (mask 0). A sequence
  longer than seq_len + 1 is cut (callers size their text so that images are never cut).
  """
  tokens, is_target = tokens[:seq_len + 1], is_target[:seq_len + 1]
  n = len(tokens) - 1
  inputs = np.full(seq_len, vocab.pad, np.int32)
  targets = np.full(seq_len, vocab.pad, np.int32)
  mask = np.zeros(seq_len, np.float32)
  inputs[:n], targets[:n], mask[:n] = tokens[:-1], tokens[1:], is_target[1:]
  return {"inputs": inputs, "targets": targets, "loss_mask": mask}


def pack_row(vocab: VocabLayout, sequences, seq_len: int) -> dict[str, np.ndarray]:
  """Sequences [(tokens [L_i], is_target [L_i]), ...] with sum(L_i - 1) <= seq_len -> one row:
  to_row's fields plus segment_ids [seq_len] int32 (1, 2, ... per sequence, 0 = padding) and
  positions [seq_len] int32 (0.. within each sequence). Each sequence is shifted on its own, so
  no target crosses a boundary."""
  rows = [to_row(vocab, tokens, is_target, len(tokens) - 1) for tokens, is_target in sequences]
  used = sum(len(r["inputs"]) for r in rows)
  if used > seq_len:
    raise ValueError(f"packed sequences need {used} positions; the row has {seq_len}")
  pad = seq_len - used
  def cat(key, fill, dtype):
    return np.concatenate([r[key] for r in rows] + [np.full(pad, fill, dtype)]).astype(dtype)
  return {"inputs": cat("inputs", vocab.pad, np.int32),
          "targets": cat("targets", vocab.pad, np.int32),
          "loss_mask": cat("loss_mask", 0, np.float32),
          "segment_ids": np.concatenate([np.full(len(r["inputs"]), k + 1, np.int32)
                                         for k, r in enumerate(rows)] +
                                        [np.zeros(pad, np.int32)]),
          "positions": np.concatenate([np.arange(len(r["inputs"]), dtype=np.int32)
                                       for r in rows] + [np.zeros(pad, np.int32)])}
