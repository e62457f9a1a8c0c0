"""Text tokenizers behind one interface: a sentencepiece model trained on the corpus, or a
Hugging Face tokenizer.json (what initialising from Qwen2.5 needs).

Text ids are used unchanged as the first ids of the multimodal vocabulary (model/vocab.py), and
no special ids are reserved here: <bos>/<eos>/<pad> are VocabLayout specials appended after them.

    tok = load_text_tokenizer(config, data_dir)
    tok.encode("a red circle.") -> [int, ...];  tok.decode(ids) -> str;  tok.vocab_size
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from typing import Iterable, Protocol

import sentencepiece as spm

from arm_jax.errors import UserError


class TextTokenizer(Protocol):
  vocab_size: int

  def encode(self, text: str) -> list[int]: ...

  def decode(self, ids: Iterable[int]) -> str: ...


class SentencePieceTokenizer:
  """A sentencepiece model file (unigram or BPE)."""

  def __init__(self, path: str):
    self.path = path
    try:
      self._sp = spm.SentencePieceProcessor(model_file=path)
    except (OSError, RuntimeError) as e:
      raise UserError(f"cannot read sentencepiece model {path}: {str(e).splitlines()[0]}; "
                      f"point data.text_tokenizer at a valid .model file") from e
    self.vocab_size = int(self._sp.vocab_size())

  def __reduce__(self):   # grain worker processes get the path, not the C++ object
    return SentencePieceTokenizer, (self.path,)

  def encode(self, text: str) -> list[int]:
    return list(self._sp.encode(text))

  def decode(self, ids: Iterable[int]) -> str:
    return self._sp.decode([int(i) for i in ids if 0 <= int(i) < self.vocab_size])


class HFTokenizer:
  """A Hugging Face `tokenizer.json` (e.g. Qwen2.5's), without its special tokens."""

  def __init__(self, path: str):
    import tokenizers   # only needed for this kind
    self.path = path
    try:
      self._tok = tokenizers.Tokenizer.from_file(path)
    except Exception as e:   # tokenizers raises a bare Exception on bad json
      raise UserError(f"cannot read tokenizer.json {path}: {str(e).splitlines()[0]}; point "
                      f"data.text_tokenizer at a Hugging Face tokenizer.json") from e
    self.vocab_size = int(self._tok.get_vocab_size(with_added_tokens=True))

  def __reduce__(self):
    return HFTokenizer, (self.path,)

  def encode(self, text: str) -> list[int]:
    return list(self._tok.encode(text, add_special_tokens=False).ids)

  def decode(self, ids: Iterable[int]) -> str:
    return self._tok.decode([int(i) for i in ids if 0 <= int(i) < self.vocab_size],
                            skip_special_tokens=True)


def encode_prompt(tok: TextTokenizer, text: str) -> list[int]:
  """A user's caption/instruction/question -> ids; empty text is a one-line error."""
  ids = tok.encode(text) if isinstance(text, str) else []
  if not isinstance(text, str) or not text.strip() or not ids:
    raise UserError(f"empty prompt {text!r}; give some text (for an unconditional sample use "
                    f"the <uncond> row that classifier-free guidance builds)")
  return ids


def train_sentencepiece(sentences: Iterable[str], vocab_size: int, path: str) -> str:
  """Trains a BPE model on `sentences` (deterministic: one thread, input order kept); returns path.

  The model has `vocab_size` pieces, or fewer when the corpus has fewer distinct merges (the
  shapes world's vocabulary is small); unknown characters map to id 0 (<unk>). Case is folded.
  """
  proto = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sentences), model_writer=proto, vocab_size=vocab_size,
      model_type="bpe", character_coverage=1.0, hard_vocab_limit=False,
      unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, num_threads=1, shuffle_input_sentence=False,
      normalization_rule_name="nmt_nfkc_cf", minloglevel=2)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(proto.getvalue())
  os.replace(tmp, path)
  return path


def corpus_tokenizer_path(config, data_dir: str) -> str:
  """Where build-data puts the sentencepiece model trained for this data config."""
  d = config.data
  key = f"{d.dataset}:{d.seed}:{d.num_train}:{config.model.text_vocab_size}"
  digest = hashlib.sha1(key.encode()).hexdigest()[:10]
  return os.path.join(data_dir, "text_tokenizer", f"spm_{digest}.model")


def check_vocab_size(tok: TextTokenizer, text_vocab_size: int, *, exact: bool) -> None:
  """One-line error when the tokenizer and model.text_vocab_size disagree.

  A tokenizer smaller than the model's text rows is fine unless `exact` (Qwen2.5's tokenizer has
  151,665 ids and its embedding 152,064 rows); ids beyond the tokenizer are never produced.
  """
  if tok.vocab_size > text_vocab_size or (exact and tok.vocab_size != text_vocab_size):
    raise UserError(f"text tokenizer {getattr(tok, 'path', '')} has {tok.vocab_size} ids but "
                    f"model.text_vocab_size is {text_vocab_size}; set "
                    f"--config.model.text_vocab_size={tok.vocab_size} or use a tokenizer of "
                    f"that size")


def load_text_tokenizer(config, data_dir: str) -> TextTokenizer:
  """config.data.text_tokenizer: '' (the corpus model build-data trained), a .model, or a .json."""
  path = config.data.text_tokenizer
  size = config.model.text_vocab_size
  if not path:
    path = corpus_tokenizer_path(config, data_dir)
    if not os.path.exists(path):
      raise UserError(f"no text tokenizer at {path}; run `arm-jax build-data` with the same "
                      f"config first, or set data.text_tokenizer to a .model or tokenizer.json")
    tok = SentencePieceTokenizer(path)
    if tok.vocab_size < size:
      logging.info("corpus tokenizer has %d ids (< model.text_vocab_size %d): the corpus has "
                   "fewer distinct pieces; the extra rows stay unused", tok.vocab_size, size)
    check_vocab_size(tok, size, exact=False)
    return tok
  if not os.path.exists(path):
    raise UserError(f"data.text_tokenizer {path} does not exist; give a sentencepiece .model or "
                    f"a Hugging Face tokenizer.json, or '' for the corpus-trained one")
  if path.endswith(".json"):
    tok = HFTokenizer(path)
    check_vocab_size(tok, size, exact=False)
  elif path.endswith(".model"):
    tok = SentencePieceTokenizer(path)
    check_vocab_size(tok, size, exact=True)
  else:
    raise UserError(f"data.text_tokenizer {path}: expected a sentencepiece .model or a "
                    f"tokenizer.json")
  return tok
