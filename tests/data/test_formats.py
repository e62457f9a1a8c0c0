"""Token layouts and loss masks, checked by hand on a tiny vocabulary.

VocabLayout(text_size=10, max_grid=4, codebook_size=16): specials start at 10
(<pad> 10, <bos> 11, <eos> 12, <boi> 13, <eoi> 14, <edit> 15, <uncond> 16, <h_1..4> 17-20,
<w_1..4> 21-24), image codes at 25.
"""
import numpy as np
import pytest

from arm_jax.data import formats
from arm_jax.model.vocab import VocabLayout

V = VocabLayout(text_size=10, max_grid=4, codebook_size=16)
PAD, BOS, EOS, BOI, EOI, EDIT, UNC = 10, 11, 12, 13, 14, 15, 16
H1, H2, W2, W3 = 17, 18, 22, 23
CODES = np.array([[0, 1, 2], [3, 4, 5]])        # 2 x 3 grid
IMG = [25, 26, 27, 28, 29, 30]
CODES2 = np.array([[6, 7, 8], [9, 10, 11]])
IMG2 = [31, 32, 33, 34, 35, 36]


def _check(seq, tokens, targets):
  got_tokens, mask = seq
  assert got_tokens.tolist() == tokens
  assert got_tokens[mask > 0].tolist() == targets
  assert set(np.unique(mask)) <= {0.0, 1.0}


def test_t2i():
  _check(formats.t2i_sequence(V, [1, 2], CODES),
         [BOS, 1, 2, BOI, H2, W3, *IMG, EOI, EOS], [H2, W3, *IMG, EOI, EOS])
  _check(formats.t2i_sequence(V, None, CODES),
         [BOS, UNC, BOI, H2, W3, *IMG, EOI, EOS], [H2, W3, *IMG, EOI, EOS])


def test_und():
  _check(formats.und_sequence(V, CODES, [3, 4], [5]),
         [BOS, BOI, H2, W3, *IMG, EOI, 3, 4, 5, EOS], [5, EOS])


def test_edit_and_its_dropped_conditions():
  _check(formats.edit_sequence(V, CODES, [7], CODES2),
         [BOS, EDIT, 7, BOI, H2, W3, *IMG, EOI, BOI, H2, W3, *IMG2, EOI, EOS],
         [H2, W3, *IMG2, EOI, EOS])
  _check(formats.edit_sequence(V, None, None, CODES2),
         [BOS, EDIT, UNC, UNC, BOI, H2, W3, *IMG2, EOI, EOS], [H2, W3, *IMG2, EOI, EOS])


def test_text_and_interleaved():
  _check(formats.text_sequence(V, [1, 2, 3]), [BOS, 1, 2, 3, EOS], [1, 2, 3, EOS])
  _check(formats.interleaved_sequence(V, [([1], CODES), ([2], CODES2)]),
         [BOS, 1, BOI, H2, W3, *IMG, EOI, 2, BOI, H2, W3, *IMG2, EOI, EOS],
         [1, BOI, H2, W3, *IMG, EOI, 2, BOI, H2, W3, *IMG2, EOI, EOS])
  packed = formats.concat([formats.text_sequence(V, [1]), formats.text_sequence(V, [2])])
  _check(packed, [BOS, 1, EOS, BOS, 2, EOS], [1, EOS, 2, EOS])


def test_prompts_are_the_prefixes_training_sees():
  t2i = formats.t2i_sequence(V, [1, 2], CODES)[0]
  prompt = formats.t2i_prompt(V, [1, 2], (2, 3))
  assert prompt.tolist() == t2i[:len(prompt)].tolist() and prompt[-1] == W3
  assert formats.t2i_prompt(V, None, (1, 2)).tolist() == [BOS, UNC, BOI, H1, 22]
  edit = formats.edit_sequence(V, CODES, [7], CODES2)[0]
  prompt = formats.edit_prompt(V, CODES, [7], (2, 3))
  assert prompt.tolist() == edit[:len(prompt)].tolist()
  assert formats.edit_prompt(V, None, [7], (2, 3)).tolist() == [BOS, EDIT, 7, UNC, BOI, H2, W3]
  assert formats.edit_prompt(V, CODES, None, (2, 3)).tolist()[:5] == [BOS, EDIT, UNC, BOI, H2]
  und = formats.und_sequence(V, CODES, [3], [5])[0]
  prompt = formats.und_prompt(V, CODES, [3])
  assert prompt.tolist() == und[:len(prompt)].tolist() and und[len(prompt)] == 5


def test_to_row_shifts_pads_and_masks():
  row = formats.to_row(V, *formats.und_sequence(V, CODES, [3], [5]), seq_len=16)
  tokens = [BOS, BOI, H2, W3, *IMG, EOI, 3, 5, EOS]   # 14 tokens -> 13 inputs + 3 pad
  assert row["inputs"].tolist() == tokens[:-1] + [PAD] * 3
  assert row["targets"].tolist() == tokens[1:] + [PAD] * 3
  assert row["loss_mask"].tolist() == [0.0] * 11 + [1.0, 1.0] + [0.0] * 3
  assert row["inputs"].dtype == np.int32 and row["loss_mask"].dtype == np.float32
  cut = formats.to_row(V, *formats.t2i_sequence(V, [1, 2], CODES), seq_len=4)
  assert cut["inputs"].tolist() == [BOS, 1, 2, BOI] and cut["loss_mask"].tolist() == [0, 0, 0, 1]


def test_edit_condition_dropout_rates():
  rng = np.random.default_rng(0)
  draws = [formats.drop_edit_conditions(rng, 0.3) for _ in range(30000)]
  for case in ((False, True), (True, False), (True, True)):
    assert draws.count(case) / len(draws) == pytest.approx(0.1, abs=0.01)
  assert all(formats.drop_edit_conditions(rng, 0.0) == (False, False) for _ in range(100))


def test_edit_target_code_sits_a_fixed_distance_after_its_source_code():
  """Copying an unchanged cell must not depend on how long the instruction is."""
  for instruction in ([7], [7, 8, 9, 10, 11]):
    tokens = formats.edit_sequence(V, CODES, instruction, CODES2)[0].tolist()
    source, target = tokens.index(IMG[0]), len(tokens) - 2 - len(IMG2)
    assert tokens[target:target + len(IMG2)] == list(IMG2)
    assert target - source == CODES.size + 4


def test_pack_row_shifts_each_sequence_on_its_own():
  one = formats.t2i_sequence(V, [1], np.array([[0]]))       # 8 tokens -> 7 positions
  two = formats.text_sequence(V, [2, 3])                     # 4 tokens -> 3 positions
  row = formats.pack_row(V, [one, two], 12)
  assert row["segment_ids"].tolist() == [1] * 7 + [2] * 3 + [0] * 2
  assert row["positions"].tolist() == list(range(7)) + list(range(3)) + [0] * 2
  assert row["inputs"][:7].tolist() == one[0][:-1].tolist()
  assert row["targets"][:7].tolist() == one[0][1:].tolist()
  assert row["inputs"][7:10].tolist() == two[0][:-1].tolist()
  assert row["targets"][7:10].tolist() == two[0][1:].tolist()     # no target crosses segments
  assert row["loss_mask"].tolist() == one[1][1:].tolist() + two[1][1:].tolist() + [0] * 2
  with pytest.raises(ValueError, match="need 10 positions"):
    formats.pack_row(V, [one, two], 9)


def test_und_dialogue_targets_every_answer():
  _check(formats.und_sequence(V, CODES, [3], [5], more=[([4], [6, 7])]),
         [BOS, BOI, H2, W3, *IMG, EOI, 3, 5, EOS, 4, 6, 7, EOS], [5, EOS, 6, 7, EOS])
