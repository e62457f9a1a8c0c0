"""The RL loop end to end on a tiny random policy: runs, logs, checkpoints and resumes exactly."""
import os
import zlib

import jax
import numpy as np
import pytest

from arm_jax import sharding as shd
from arm_jax.config import load_config
from arm_jax.model.transformer import ModelConfig
from arm_jax.rl import loop, schedule
from arm_jax.rl.codec import PatchColorCodec
from arm_jax.rl.prompts import PromptSource
from arm_jax.train.metrics import read_jsonl

OVERRIDES = [
    "--config.model.d_model=32", "--config.model.n_layers=1", "--config.model.n_heads=2",
    "--config.model.n_kv_heads=1", "--config.model.head_dim=16", "--config.model.d_ff=64",
    "--config.model.dtype='float32'", "--config.data.image_size=32", "--config.data.grid=2",
    "--config.data.max_objects=2", "--config.rl.group_size=2", "--config.rl.prompts_per_step=2",
    "--config.rl.lr=1e-3", "--config.decode.length_buckets=(48,)",
    "--config.train.async_ckpt=false", "--config.mesh.shape=(1,1,1)"]


def word_ids(text):
  return [zlib.crc32(w.encode()) % 500 for w in text.split()]


@pytest.fixture(scope="module")
def ctx():
  cfg = load_config("shapes_tiny", OVERRIDES)
  vocab = ModelConfig.from_config(cfg.model).vocab
  codec = PatchColorCodec.from_config(cfg)
  source = PromptSource(cfg, vocab, word_ids, codec.encode)
  return loop.RLContext(cfg, shd.make_mesh(cfg.mesh), shd.rules_of(cfg.mesh), codec, source,
                        (4, 4), log=lambda s: None)


def _init(ctx):
  state, _ = loop.policy_state(ctx, 3)
  return state["params"]


def test_resume_is_exact_and_logs_rewards(ctx, tmp_path):
  init = _init(ctx)
  straight = loop.run_schedule(ctx, [schedule.StagePlan(1, "t2i", 2)], str(tmp_path / "a"), init)
  loop.run_schedule(ctx, [schedule.StagePlan(1, "t2i", 1)], str(tmp_path / "b"), init)
  resumed = loop.run_schedule(ctx, [schedule.StagePlan(1, "t2i", 2)], str(tmp_path / "b"), init)
  for a, b in zip(jax.tree.leaves(straight["params"]), jax.tree.leaves(resumed["params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # the policy moved away from its start
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree.leaves(straight["params"]), jax.tree.leaves(init)))
  assert moved > 0
  rows = read_jsonl(str(tmp_path / "b" / "metrics" / "rl_1_t2i.jsonl"))
  assert [r["step"] for r in rows] == [1, 2]
  for key in ("reward", "reward/adherence", "kl", "clip_frac", "time_sample_s", "time_score_s"):
    assert key in rows[-1]
  assert rows[0]["ratio"] == pytest.approx(1.0, abs=0.05)   # first update starts on-policy
  assert sorted(os.listdir(tmp_path / "b" / "checkpoints" / "rl_1_t2i")) == ["1", "2"]
  # inference (generate / eval / export) loads the RL policy like any decoder checkpoint
  from arm_jax.decode.loading import find_decoder_step
  from arm_jax.interop.checkpoint_params import restore_params
  step_dir = find_decoder_step(str(tmp_path / "b"))
  assert step_dir.endswith(os.path.join("rl_1_t2i", "2"))
  loaded = restore_params(step_dir, ctx.config, ctx.mesh, ctx.rules)
  for a, b in zip(jax.tree.leaves(straight["params"]), jax.tree.leaves(loaded)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_study_runs_every_table_row_and_resumes(ctx, tmp_path):
  from arm_jax.rl import study
  calls = []

  def fake_eval(params, out_dir, sample_seed):
    calls.append((out_dir, sample_seed))
    x = float(np.asarray(jax.tree.leaves(params)[0]).mean())
    return {"GenEval": x, "WISE": 2 * x, "GEdit G_O": 10 * x}

  plans = schedule.parse_stages((("t2i", 1), ("edit", 1)))
  seed_dir = str(tmp_path / "seed_0")
  scores = study.run_seed(ctx, plans, _init(ctx), fake_eval, seed_dir, log=lambda s: None,
                          sample_seed=1234)
  assert list(scores) == ["SFT", "T2I-RL", "T2I->Edit", "Edit-RL"]
  assert scores["T2I-RL"]["GenEval"] != scores["SFT"]["GenEval"]
  assert len(calls) == 4 and {seed for _, seed in calls} == {1234}   # SFT too: paired draws
  again = study.run_seed(ctx, plans, _init(ctx), fake_eval, seed_dir, log=lambda s: None,
                         sample_seed=1234)
  assert again == scores and len(calls) == 4          # finished runs are neither trained nor scored
  table = study.aggregate({0: scores}, list(schedule.study_runs(plans)))
  text = study.write_table(table, str(tmp_path), {"seeds": [0], "stages": [], "seconds": 1.0})
  assert "| T2I->Edit |" in text and "Edit-RL -> GenEval (other task)" in text
  assert os.path.exists(study.plot_curves(str(tmp_path), [0], schedule.study_runs(plans)))


def test_heldout_reward_is_deterministic_and_leaves_the_seed(ctx):
  from arm_jax.rl import study
  params = _init(ctx)
  _, spec = loop.policy_state(ctx, 0, params)
  before = ctx.seed
  a = study.heldout_reward(ctx, spec, params, "edit", 2, seed=999)
  assert ctx.seed == before
  assert a == study.heldout_reward(ctx, spec, params, "edit", 2, seed=999)
  assert {"reward", "reward_se", "reward/consistency"} <= set(a) and 0 <= a["reward"] <= 1
  assert a["reward_se"] > 0
  t2i = study.heldout_reward(ctx, spec, params, "t2i", 2, seed=999)
  assert "reward/consistency" not in t2i and "reward/adherence" in t2i
  with pytest.raises(ValueError, match="kind"):
    study.heldout_reward(ctx, spec, params, "joint", 1, seed=999)


def test_cell_credit_gives_editing_tokens_their_cell_advantage(ctx, monkeypatch):
  import dataclasses
  from arm_jax.rl import credit
  grid = ctx.config.data.grid

  def scores(images, metas):   # the first sample of each group misses cell 0, the rest get all
    out = np.ones((len(metas), grid, grid), np.float32)
    out[::ctx.config.rl.group_size, 0, 0] = 0
    return out
  monkeypatch.setattr(credit, "edit_cell_scores", scores)
  params = _init(ctx)
  state, spec = loop.policy_state(ctx, 0, params)
  plan = schedule.StagePlan(1, "joint", 1)
  contexts = []
  for weight in (0.0, 1.0):
    cfg = ctx.config.copy_and_resolve_references()
    cfg.rl.cell_credit = weight
    contexts.append(dataclasses.replace(ctx, config=cfg))
  plain_ctx, dense_ctx = contexts
  plain, _ = loop.collect(plain_ctx, spec, params, plan, 0)
  dense, metrics = loop.collect(dense_ctx, spec, params, plan, 0)
  assert metrics["reward/cells"] == pytest.approx(1 - 1 / (2 * grid * grid))
  mask = plain["loss_mask"] > 0
  np.testing.assert_array_equal(dense["advantages"][~mask], 0)
  # rows are prompt-major, T2I groups first: plain GRPO is one value per row; with cell credit
  # the T2I rows stay as they were; an editing row's cell-0 tokens move by the cell's advantage
  per_row = [np.unique(a[m]) for a, m in zip(plain["advantages"], mask)]
  assert all(len(u) == 1 for u in per_row)
  t2i = slice(0, ctx.config.rl.group_size)
  np.testing.assert_array_equal(dense["advantages"][t2i], plain["advantages"][t2i])
  cells = credit.code_cells(ctx.grid_hw, grid)
  for row, sign in ((t2i.stop, -1), (t2i.stop + 1, 1)):
    shift = dense["advantages"][row][mask[row]] - plain["advantages"][row][mask[row]]
    np.testing.assert_allclose(shift[cells != 0], 0)
    assert np.all(np.sign(shift[cells == 0]) == sign)
  state, upd = loop.update(dense_ctx, spec, loop._step_fn(dense_ctx, spec), state, params, dense)
  assert np.isfinite(upd["loss"])


def test_guided_rollouts_sample_what_the_guided_sampler_draws(ctx):
  """rl.rollout_guidance: each task is sampled with its eval guidance, the branch rows are the
  prompt's own guidance rows, and the result differs from unguided sampling."""
  import copy
  import jax.numpy as jnp
  from arm_jax.decode import constraints as cons, sampler as dec
  from arm_jax.rl.rollouts import Sampler, left_pad, task_runs
  state, spec = loop.policy_state(ctx, 3)
  params = state["params"]
  cfg = copy.deepcopy(ctx.config)
  cfg.rl.rollout_guidance = True
  cfg.decode.cfg_scale, cfg.decode.edit_text_scale, cfg.decode.edit_image_scale = 3.0, 2.0, 1.5
  guided = Sampler(spec.graphdef, ctx.vocab, cfg, ctx.mesh, ctx.rules)
  plain = Sampler(spec.graphdef, ctx.vocab, ctx.config, ctx.mesh, ctx.rules)
  assert guided.guidance == {"t2i": ("t2i", (3.0, 1.0)), "edit": ("edit", (2.0, 1.5))}
  assert plain.guidance["edit"][0] == plain.guidance["t2i"][0] == "none"
  g, length, (h, w) = 2, 48, ctx.grid_hw
  prompts = ctx.prompts.batch("t2i", 1, (0,)) + ctx.prompts.batch("edit", 1, (0,))
  keys = jax.random.split(jax.random.key(5), 2 * g)
  out = guided(params, prompts, g, keys, ctx.grid_hw, length)
  assert [t for t, _ in task_runs(["t2i"] * g + ["edit"] * g)] == ["t2i", "edit"]
  # the edit rows by hand: full, image-only (instruction -> <uncond>), uncond; edit guidance
  edit = prompts[1]
  assert len(edit.guidance_ids) == 2 and ctx.vocab.uncond in edit.guidance_ids[0]
  rows = [edit.ids] * g + [edit.guidance_ids[0]] * g + [edit.guidance_ids[1]] * g
  prompt, mask = left_pad(rows, length, ctx.vocab.pad)
  kn = dec.knobs(g, temperature=cfg.rl.edit_temperature, top_k=cfg.rl.top_k,
                 text_scale=2.0, image_scale=1.5)
  want = dec.sample(params, spec.graphdef, jnp.asarray(prompt), jnp.asarray(mask), keys[g:],
                    max_new=h * w + 1, constraint=cons.image_rows(g, h, w, header_in_prompt=True),
                    kn=kn, guidance="edit", cache_dtype=jnp.dtype(cfg.decode.cache_dtype))
  np.testing.assert_array_equal(out["generated"][g:], np.asarray(want.tokens))
  unguided = plain(params, prompts, g, keys, ctx.grid_hw, length)
  assert (unguided["generated"] != out["generated"]).any()
  with pytest.raises(ValueError, match="not contiguous"):
    task_runs(["t2i", "edit", "t2i"])
