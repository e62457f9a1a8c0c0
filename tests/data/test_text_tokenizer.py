import pytest

from arm_jax.data import text_tokenizer as tt
from arm_jax.errors import UserError


def _one_line(excinfo):
  assert "\n" not in str(excinfo.value)


def test_corpus_tokenizer_round_trips_and_fits_the_config(world):
  tok = tt.load_text_tokenizer(world.config, world.data_dir)
  assert 0 < tok.vocab_size <= world.config.model.text_vocab_size
  for text in ("a large red circle in the top left.", "grass is green.", "make the square blue"):
    ids = tok.encode(text)
    assert ids and max(ids) < tok.vocab_size and tok.decode(ids) == text
  assert tok.encode("A Red Circle") == tok.encode("a red circle")   # case folded


def test_training_is_deterministic(tmp_path):
  sentences = [f"a {c} {s} in the {p}." for c in ("red", "blue", "green") for s in
               ("circle", "square") for p in ("top left", "center")] * 5
  a = tt.train_sentencepiece(sentences, 64, str(tmp_path / "a.model"))
  b = tt.train_sentencepiece(sentences, 64, str(tmp_path / "b.model"))
  assert open(a, "rb").read() == open(b, "rb").read()


def _config(world, **data):
  cfg = world.config.copy_and_resolve_references()
  for k, v in data.items():
    setattr(cfg.data, k, v)
  return cfg


def test_sentencepiece_file_must_match_text_vocab_size_exactly(world, tmp_path):
  path = tt.train_sentencepiece(["a red circle.", "a blue square."] * 20, 40,
                                str(tmp_path / "m.model"))
  cfg = _config(world, text_tokenizer=path)
  with pytest.raises(UserError, match=r"set --config.model.text_vocab_size=\d+") as e:
    tt.load_text_tokenizer(cfg, world.data_dir)
  _one_line(e)
  size = tt.SentencePieceTokenizer(path).vocab_size
  cfg.model.text_vocab_size = size
  assert tt.load_text_tokenizer(cfg, world.data_dir).vocab_size == size


def _tokenizer_json(path, words):
  from tokenizers import Tokenizer, models, pre_tokenizers
  vocab = {w: i for i, w in enumerate(["[UNK]"] + words)}
  tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  tok.save(str(path))
  return str(path)


def test_hf_tokenizer_json_may_be_smaller_than_the_text_rows(world, tmp_path):
  path = _tokenizer_json(tmp_path / "tokenizer.json", ["a", "red", "circle", "blue"])
  tok = tt.load_text_tokenizer(_config(world, text_tokenizer=path), world.data_dir)
  assert tok.vocab_size == 5 and tok.encode("a red circle") == [1, 2, 3]
  assert tok.decode([1, 4]) == "a blue"
  cfg = _config(world, text_tokenizer=path)
  cfg.model.text_vocab_size = 4
  with pytest.raises(UserError, match="has 5 ids but model.text_vocab_size is 4") as e:
    tt.load_text_tokenizer(cfg, world.data_dir)
  _one_line(e)


def test_tokenizers_survive_pickling(world, tmp_path):
  import pickle
  for tok in (tt.load_text_tokenizer(world.config, world.data_dir),
              tt.HFTokenizer(_tokenizer_json(tmp_path / "t.json", ["a", "b"]))):
    assert pickle.loads(pickle.dumps(tok)).encode("a b") == tok.encode("a b")


@pytest.mark.parametrize("name, content, match", [
    ("missing.model", None, "does not exist"),
    ("vocab.txt", "a b c", "expected a sentencepiece .model or a tokenizer.json"),
    ("bad.json", "{not json", "cannot read tokenizer.json"),
    ("bad.model", "not a model", "cannot read sentencepiece model"),
])
def test_bad_tokenizer_files_are_one_line_errors(world, tmp_path, name, content, match):
  path = tmp_path / name
  if content is not None:
    path.write_text(content)
  with pytest.raises(UserError, match=match) as e:
    tt.load_text_tokenizer(_config(world, text_tokenizer=str(path)), world.data_dir)
  _one_line(e)


def test_missing_corpus_tokenizer_says_to_build(world, tmp_path):
  with pytest.raises(UserError, match="build-data") as e:
    tt.load_text_tokenizer(world.config, str(tmp_path))
  _one_line(e)


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_prompt_is_a_one_line_error(world, text):
  tok = tt.load_text_tokenizer(world.config, world.data_dir)
  with pytest.raises(UserError, match="empty prompt") as e:
    tt.encode_prompt(tok, text)
  _one_line(e)
  assert tt.encode_prompt(tok, "a red circle") == tok.encode("a red circle")
