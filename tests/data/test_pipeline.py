import dataclasses
import json

import numpy as np
import pytest

from arm_jax.data import pipeline
from arm_jax.errors import UserError
from arm_jax.data.sources import dataset_records
from arm_jax.model.vocab import VocabLayout


def _iter(world, config=None, **kw):
  return pipeline.make_train_iterator(config or world.config, world.data_dir, world.codes_dir,
                                      **kw)


def _take(it, n):
  return [next(it) for _ in range(n)]


def _same(a, b):
  return all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x)


def test_batch_contract(world):
  batch = next(_iter(world))
  t, b = world.config.train.seq_len, world.config.train.batch_size
  assert set(batch) == {"inputs", "targets", "loss_mask"}
  assert batch["inputs"].shape == batch["targets"].shape == batch["loss_mask"].shape == (b, t)
  assert batch["inputs"].dtype == np.int32 and batch["loss_mask"].dtype == np.float32
  vocab = VocabLayout.from_config(world.config.model)
  inputs, targets = batch["inputs"], batch["targets"]
  # targets are inputs shifted by one wherever both are real tokens
  real = (inputs[:, 1:] != vocab.pad)
  assert np.array_equal(targets[:, :-1][real], inputs[:, 1:][real])
  assert (inputs[:, 0] == vocab.bos).all()
  assert not batch["loss_mask"][targets == vocab.pad].any()


def test_same_seed_same_batches_other_seed_others(world):
  assert _same(_take(_iter(world, seed=3), 3), _take(_iter(world, seed=3), 3))
  assert not _same(_take(_iter(world, seed=3), 3), _take(_iter(world, seed=4), 3))


def test_resume_mid_epoch_from_saved_state(world):
  it = _iter(world, seed=1)
  _take(it, 9)   # 36 rows: past the first epoch of the 32-example split
  state = it.get_state()
  expected = _take(it, 3)
  fresh = _iter(world, seed=1)
  fresh.set_state(state)
  assert _same(_take(fresh, 3), expected)


def test_orbax_grain_checkpoint_round_trip(world, tmp_path):
  import grain
  import orbax.checkpoint as ocp
  it = _iter(world, seed=2)
  _take(it, 2)
  mngr = ocp.CheckpointManager(str(tmp_path / "ckpt"),
                               item_handlers={"data": grain.checkpoint.CheckpointHandler()})
  mngr.save(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
  mngr.wait_until_finished()
  expected = _take(it, 2)
  fresh = _iter(world, seed=2)
  mngr.restore(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  assert _same(_take(fresh, 2), expected)
  mngr.close()


def test_process_shards_are_disjoint_and_cover_the_global_batch(world):
  whole = _take(_iter(world, seed=5), 3)
  p0 = _take(_iter(world, seed=5, process_index=0, process_count=2), 3)
  p1 = _take(_iter(world, seed=5, process_index=1, process_count=2), 3)
  for g, a, b in zip(whole, p0, p1):
    assert a["inputs"].shape[0] == b["inputs"].shape[0] == g["inputs"].shape[0] // 2
    assert not {r.tobytes() for r in a["inputs"]} & {r.tobytes() for r in b["inputs"]}
    for k in g:   # process 0 holds the first half of the global batch, process 1 the second
      assert np.array_equal(np.concatenate([a[k], b[k]]), g[k])


def _rows_of(world, fmt, n=3, **overrides):
  cfg = world.config.copy_and_resolve_references()
  cfg.data.mixture = ((fmt, 1.0),)
  for k, v in overrides.items():
    setattr(cfg.data, k, v)
  out = []
  for batch in _take(_iter(world, cfg), n):
    out += [{k: batch[k][i] for k in batch} for i in range(batch["inputs"].shape[0])]
  return out


def _targets(row):
  return row["targets"][row["loss_mask"] > 0].tolist()


def _after(tokens, start_token, nth=1):
  """The tokens after the nth occurrence of start_token."""
  pos = [i for i, t in enumerate(tokens) if t == start_token][nth - 1]
  return tokens[pos + 1:]


def test_loss_masks_cover_exactly_the_target_tokens(world):
  v = VocabLayout.from_config(world.config.model)
  for row in _rows_of(world, "t2i", cond_dropout=0.0):
    seq = row["inputs"][row["inputs"] != v.pad].tolist() + [v.eos]
    assert _targets(row) == _after(seq, v.boi)   # shape tokens, codes, <eoi>, <eos>
    assert len(_targets(row)) == 64 + 4
  for row in _rows_of(world, "edit", cond_dropout=0.0):
    seq = row["inputs"][row["inputs"] != v.pad].tolist() + [v.eos]
    assert _targets(row) == _after(seq, v.boi, nth=2) and len(_targets(row)) == 68
    assert seq.count(v.edit) == 1
  for row in _rows_of(world, "und"):
    seq = row["inputs"][row["inputs"] != v.pad].tolist() + [v.eos]
    got = _targets(row)
    assert got[-1] == v.eos and all(t < v.text_size for t in got[:-1]) and len(got) >= 2
    assert seq[-len(got):] == got and seq[-len(got) - 1] < v.text_size   # question before answer
  for row in _rows_of(world, "text"):
    real = row["inputs"] != v.pad
    # every target after the first <bos> counts except the <bos> of the next packed sentence
    expect = [t for t, r in zip(row["targets"], real) if r and t != v.bos]
    assert _targets(row) == expect


def test_loss_weights_scale_one_formats_targets(world):
  plain = _rows_of(world, "und", n=1)
  weighted = _rows_of(world, "und", n=1, loss_weights=(("und", 3.0), ("t2i", 0.5)))
  for a, b in zip(plain, weighted):
    assert np.array_equal(a["inputs"], b["inputs"])
    np.testing.assert_array_equal(b["loss_mask"], 3.0 * a["loss_mask"])
  t2i = _rows_of(world, "t2i", n=1, loss_weights=(("und", 3.0),))
  assert set(np.unique(np.concatenate([r["loss_mask"] for r in t2i]))) == {0.0, 1.0}


def test_warmup_mixture_comes_first_and_resumes_in_either_phase(world):
  cfg = world.config.copy_and_resolve_references()
  cfg.data.mixture, cfg.data.cond_dropout = (("t2i", 1.0),), 0.0
  cfg.data.warmup_mixture, cfg.data.warmup_steps = (("und", 1.0),), 2
  it = _iter(world, cfg, seed=5)
  batches = _take(it, 4)
  n_targets = [[int((m > 0).sum()) for m in b["loss_mask"]] for b in batches]
  assert all(n < 68 for b in n_targets[:2] for n in b)     # und answers
  assert all(n == 68 for b in n_targets[2:] for n in b)    # whole images
  for k in (1, 3):   # resume in the warm-up phase and after it
    it = _iter(world, cfg, seed=5)
    _take(it, k)
    state = it.get_state()
    again = _iter(world, cfg, seed=5)
    again.set_state(state)
    assert _same([next(again)], batches[k:k + 1])
  plain = world.config.copy_and_resolve_references()
  plain.data.mixture, plain.data.cond_dropout = (("t2i", 1.0),), 0.0
  # After the warm-up, data.mixture runs from its own start.
  assert _same(batches[2:], _take(_iter(world, plain, seed=5), 2))


def test_condition_dropout_uses_uncond(world):
  v = VocabLayout.from_config(world.config.model)
  rows = _rows_of(world, "t2i", n=2, cond_dropout=1.0)
  assert all(r["inputs"][:3].tolist() == [v.bos, v.uncond, v.boi] for r in rows)
  rows = _rows_of(world, "edit", n=4, cond_dropout=1.0)
  assert all((r["inputs"] == v.uncond).sum() >= 1 for r in rows)
  assert all(r["inputs"][:2].tolist() == [v.bos, v.edit] for r in rows)
  assert any((r["inputs"] == v.boi).sum() == 1 for r in rows)      # source image dropped
  assert any(r["inputs"][2] == v.uncond and (r["inputs"] == v.boi).sum() == 2 for r in rows)


def test_mixture_of_all_formats_including_interleaved_and_web(world, caplog):
  rows = _rows_of(world, "interleaved", n=1)
  v = VocabLayout.from_config(world.config.model)
  assert all(_targets(r)[-1] == v.eos and (r["inputs"] == v.boi).sum() >= 1 for r in rows)
  rows = _rows_of(world, "web", n=1)   # no web_dataset: pairs of the main dataset, logged
  assert "web_dataset is empty" in caplog.text
  assert all(len(_targets(r)) == 68 for r in rows)


def test_on_the_fly_encoder_matches_precomputed_codes(world):
  a = _take(_iter(world, seed=7), 2)
  b = _take(pipeline.make_train_iterator(world.config, world.data_dir, "/nonexistent", seed=7,
                                         encode=world.encode), 2)
  assert _same(a, b)


@pytest.mark.parametrize("override, match", [
    ({"mixture": (("t2x", 1.0),)}, "unknown format 't2x'"),
    ({"mixture": (("t2i", 0.0),)}, "must be > 0"),
    ({"dataset": "no_such_dataset"}, "dataset 'no_such_dataset' not found"),
])
def test_bad_config_is_a_one_line_error(world, override, match):
  cfg = world.config.copy_and_resolve_references()
  for k, val in override.items():
    setattr(cfg.data, k, val)
  with pytest.raises(UserError, match=match) as e:
    next(_iter(world, cfg))
  assert "\n" not in str(e.value)


def test_seq_len_too_short_for_edit_rows(world):
  cfg = world.config.copy_and_resolve_references()
  cfg.train.seq_len = 100
  with pytest.raises(UserError, match="too short for 'edit' rows of 8x8 codes"):
    _iter(world, cfg)


def test_missing_and_truncated_codes(world, tmp_path):
  import shutil
  with pytest.raises(UserError, match="no visual codes"):
    pipeline.make_train_iterator(world.config, world.data_dir, str(tmp_path / "none"))
  broken = tmp_path / "codes"
  shutil.copytree(world.codes_dir, broken)
  path = next(broken.rglob("train.array_record"))
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  with pytest.raises(UserError, match="truncated or corrupt") as e:
    pipeline.make_train_iterator(world.config, world.data_dir, str(broken))
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("which", ["images_*", "text_*"])
def test_truncated_dataset_shard(world, tmp_path, which):
  import shutil
  data = tmp_path / "data"
  shutil.copytree(world.data_dir, data)
  shard = next(next(data.glob(f"shapes_world/{which}")).rglob("*train.array_record-*"))
  raw = shard.read_bytes()
  shard.write_bytes(raw[: len(raw) - 300])
  with pytest.raises(UserError, match="truncated or corrupt") as e:
    pipeline.make_train_iterator(world.config, str(data), world.codes_dir)
  assert "\n" not in str(e.value)


def test_worker_processes_give_the_same_batches_and_resume(world):
  cfg = world.config.copy_and_resolve_references()
  cfg.data.worker_count = 1   # each worker process costs seconds to start: one is enough here
  expected = _take(_iter(world, seed=8), 4)
  it = _iter(world, cfg, seed=8)
  assert _same(_take(it, 2), expected[:2])
  state = it.get_state()
  fresh = _iter(world, cfg, seed=8)
  fresh.set_state(state)
  assert _same(_take(fresh, 2), expected[2:])


def _segments(row):
  """[(inputs, targets, loss_mask, positions)] of each segment of a packed row."""
  out = []
  for k in range(1, int(row["segment_ids"].max()) + 1):
    at = row["segment_ids"] == k
    out.append(tuple(row[f][at] for f in ("inputs", "targets", "loss_mask", "positions")))
  return out


@pytest.mark.parametrize("fmt", ["t2i", "und", "edit", "text"])
def test_packed_rows_hold_whole_sequences_one_per_segment(world, fmt):
  v = VocabLayout.from_config(world.config.model)
  rows = _rows_of(world, fmt, n=2, pack=True, cond_dropout=0.0)
  assert set(rows[0]) == {"inputs", "targets", "loss_mask", "segment_ids", "positions"}
  if fmt != "edit":   # two tiny-world edit rows (2 x 64 codes) never share a row
    assert max(int(r["segment_ids"].max()) for r in rows) >= 2    # rows do fill up
  for row in rows:
    seg = row["segment_ids"]
    real = seg > 0
    assert real[:real.sum()].all() and (np.diff(seg[real]) >= 0).all()   # padding at the end
    assert (row["inputs"][seg == 0] == v.pad).all() and not row["loss_mask"][seg == 0].any()
    for inputs, targets, mask, positions in _segments(row):
      assert inputs[0] == v.bos and positions.tolist() == list(range(len(inputs)))
      assert targets[-1] == v.eos and mask[-1] == 1          # each sequence ends in its row
      assert np.array_equal(targets[:-1], inputs[1:])        # shifted within the segment


def test_und_dialogues_ask_several_questions_about_one_image(world):
  v = VocabLayout.from_config(world.config.model)
  rows = _rows_of(world, "und", n=2, und_questions=4)
  answers = [int(((r["targets"] == v.eos) & (r["loss_mask"] > 0)).sum()) for r in rows]
  assert max(answers) >= 2 and min(answers) >= 1
  assert all((r["inputs"] == v.boi).sum() == 1 for r in rows)   # one image per row


def test_dialogue_questions_are_drawn_fresh_from_the_scene(world):
  from arm_jax.data import questions
  from arm_jax.data.phrases import number_word
  from arm_jax.data.world import Scene
  records = dataset_records(world.config, world.data_dir, "train")
  record = next(r for r in records if r["objects"])
  draws = [pipeline._questions(record, [], np.random.default_rng(s), 3) for s in range(40)]
  asked = {q for d in draws for q, _ in d}
  assert len(asked) > len(record["qa"]) + 1            # more than the stored pairs and caption
  scene = Scene.from_json(record["objects"], record["grid"])
  colors = {o.color for o in scene.objects}
  for q, a in (p for d in draws for p in d):
    if q.startswith("what color") and q.endswith("?"):
      assert a in colors                               # answers are the scene's truth
  same = pipeline._questions(record, [], np.random.default_rng(3), 3)
  assert same == draws[3]
  empty = dict(record, objects=[])                     # an empty scene is asked what fits it
  answers = {a for d in range(20)
             for _, a in pipeline._questions(empty, [], np.random.default_rng(d), 3)}
  assert answers - set(record["captions"][:1]) <= {"no", number_word(0)}
  assert questions.CAPTION_QUESTION in asked


def test_records_without_images_are_parsed_once_up_to_the_memo_limit(world):
  records = dataset_records(world.config, world.data_dir, "train", images=False)
  assert records.memo_limit == world.config.data.memo_records > 0
  reads = []
  records.source = _Counting(records.source, reads)
  first = [records[i] for i in (0, 1, 0, 2, 1)]
  assert reads == [0, 1, 2]                                      # each parsed once
  fresh = dataset_records(world.config, world.data_dir, "train", images=False)
  assert [json.dumps(r, sort_keys=True, default=str) for r in first] == \
      [json.dumps(fresh[i], sort_keys=True, default=str) for i in (0, 1, 0, 2, 1)]
  one = dataclasses.replace(records, memo_limit=1)   # a fresh memo, the same counting source
  reads.clear()
  _ = [one[i] for i in (0, 1, 1, 0)]
  assert reads == [0, 1, 1]                                      # only record 0 was kept
  assert dataset_records(world.config, world.data_dir, "train").memo_limit == 0   # images: never


class _Counting:
  def __init__(self, source, reads):
    self.source, self.reads = source, reads

  def __getitem__(self, index):
    self.reads.append(index)
    return self.source[index]

  def __len__(self):
    return len(self.source)
