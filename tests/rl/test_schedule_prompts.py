import zlib

import numpy as np
import pytest

from arm_jax.config import load_config
from arm_jax.data.edits import apply_edit
from arm_jax.errors import UserError
from arm_jax.model.transformer import ModelConfig
from arm_jax.rl import schedule
from arm_jax.rl.codec import PatchColorCodec
from arm_jax.rl.prompts import PromptSource, prompt_key


def test_paper_schedule_gives_table8_rows():
  plans = schedule.parse_stages((("t2i", 280), ("edit", 100), ("joint", 200)))
  runs = schedule.study_runs(plans)
  assert list(runs) == ["SFT", "T2I-RL", "T2I->Edit", "T2I->Edit->joint", "Edit-RL"]
  assert [p.name for p in runs["T2I->Edit->joint"]] == ["rl_1_t2i", "rl_2_edit", "rl_3_joint"]
  assert [(p.name, p.steps) for p in runs["Edit-RL"]] == [("rl_1_edit", 100)]
  assert schedule.split_prompts("joint", 5) == [("t2i", 3), ("edit", 2)]


@pytest.mark.parametrize("stages, match", [
    ((("t2i", 0),), "iterations >= 1"), ((("video", 3),), "kind 'video'"),
    ((("t2i",),), "must be \\(kind, iterations\\)"), ((), "empty")])
def test_bad_schedules_are_user_errors(stages, match):
  with pytest.raises(UserError, match=match):
    schedule.parse_stages(stages)


@pytest.fixture(scope="module")
def source():
  cfg = load_config("shapes_tiny")
  vocab = ModelConfig.from_config(cfg.model).vocab
  codec = PatchColorCodec.from_config(cfg)
  tok = lambda text: [zlib.crc32(w.encode()) % 500 for w in text.split()]
  return cfg, vocab, codec, tok


def test_prompts_are_deterministic_and_well_formed(source):
  cfg, vocab, codec, tok = source
  ps = PromptSource(cfg, vocab, tok, codec.encode)
  a, b = ps.batch("edit", 3, (0, 1, 5)), ps.batch("edit", 3, (0, 1, 5))
  assert [p.meta for p in a] == [p.meta for p in b]
  assert [p.meta for p in ps.batch("edit", 3, (0, 1, 6))] != [p.meta for p in a]
  for p in a:
    assert p.meta.target == apply_edit(p.meta.source, p.meta.edit)
    assert list(p.ids[-3:]) == [vocab.boi, vocab.height_token(8), vocab.width_token(8)]
    codes = codec.encode(p.source_image[None])[0]
    # <bos> <edit> instruction <boi> <h> <w> source(64) <eoi> <boi> <h> <w>
    assert list(p.ids[2:-71]) == tok(p.meta.text)
    assert list(p.ids[-68:-4]) == list(vocab.codes_to_ids(codes.reshape(-1)))
  t2i = ps.batch("t2i", 4, (0, 1, 5))
  assert all(p.meta.task == "t2i" and p.meta.target.objects for p in t2i)
  assert list(t2i[0].ids[1:-3]) == tok(t2i[0].meta.text)


def test_eval_prompts_are_never_drawn(source):
  cfg, vocab, codec, tok = source
  first = PromptSource(cfg, vocab, tok, codec.encode).batch("t2i", 1, (0, 1, 0))[0]
  held = PromptSource(cfg, vocab, tok, codec.encode, exclude=frozenset({prompt_key(first.meta)}))
  assert held.batch("t2i", 1, (0, 1, 0))[0].meta.text != first.meta.text


def test_rl_captions_never_coincide_with_geneval_or_wise_prompts(source):
  from arm_jax.eval import geneval, wise
  cfg, vocab, codec, tok = source
  evals = {i.prompt for s in range(2) for i in geneval.make_items(s, 500, 3, 3)}
  evals |= {i.prompt for s in range(2) for i in wise.make_items(s, 500, 3)}
  ps = PromptSource(cfg, vocab, tok, codec.encode)
  drawn = {p.meta.text for it in range(20) for p in ps.batch("t2i", 16, (0, 1, it))}
  assert len(drawn) > 250 and not drawn & evals


def test_geneval_prompts_skip_eval_prompts_and_held_out_pairs_and_are_scored_by_its_rule(source):
  from arm_jax.data import world
  from arm_jax.data.shapes_examples import HELD_OUT
  from arm_jax.eval import geneval
  from arm_jax.rl import rewards
  cfg, vocab, codec, tok = source
  cfg = load_config("shapes_tiny", ["--config.rl.t2i_prompts=geneval"])
  evals = frozenset(i.prompt for i in geneval.make_items(0, 64, 3, 3))
  ps = PromptSource(cfg, vocab, tok, codec.encode, exclude=evals)
  drawn = [p.meta for it in range(8) for p in ps.batch("t2i", 16, (0, 1, it))]
  assert {m.geneval["tag"] for m in drawn} >= {"color_attr", "position"}
  assert not {m.text for m in drawn} & evals
  assert not any((r.get("color"), r["class"]) in HELD_OUT for m in drawn
                 for r in m.geneval["include"])
  # adherence is GenEval's 0/1 rule: the reference scene passes, an empty canvas fails.
  meta = drawn[0]
  h, w = ps.image_hw
  good = world.render(meta.target, h, w)
  empty = world.render(world.Scene((), meta.target.grid), h, w)
  np.testing.assert_array_equal(rewards.adherence(np.stack([good, empty]), [meta, meta]), [1, 0])
