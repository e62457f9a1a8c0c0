"""run_eval end to end on small sets: oracle at the ceiling, wrong model at the floor, files out."""
import json
import os

import numpy as np
import pytest
from tensorboardX import SummaryWriter

from arm_jax.config import load_config
from arm_jax.errors import UserError
from arm_jax.eval import benchmark_files as bf
from arm_jax.eval import geneval
from arm_jax.eval.detector import parse_image
from arm_jax.eval.reference_models import OracleModel, WrongModel
from arm_jax.eval.sets import build_sets, prompt_keys
from arm_jax.eval.suite import evaluate, run_eval
from arm_jax.rl.codec import PatchColorCodec

SMALL = ["--config.eval.num_geneval=12", "--config.eval.num_wise=6", "--config.eval.num_edit=10",
         "--config.eval.num_und=10"]


@pytest.fixture(scope="module")
def config():
  return load_config("shapes_tiny", SMALL)


@pytest.fixture(scope="module")
def oracle_run(config, tmp_path_factory):
  out = tmp_path_factory.mktemp("oracle")
  return run_eval(config, OracleModel(build_sets(config)), str(out), {"psnr": 19.6}), out


def test_oracle_scores_the_ceiling(oracle_run):
  metrics, _ = oracle_run
  assert metrics["headline"] == {"GenEval": 1.0, "WISE": pytest.approx(1.0), "GEdit G_SC": 10.0,
                                 "GEdit G_PQ": 10.0, "GEdit G_O": 10.0, "POPE F1": 1.0,
                                 "und acc": 1.0, "MC acc": 1.0, "count acc": 1.0}
  assert metrics["headline_se"]["GenEval"] == 0.0 and metrics["headline_se"]["GEdit G_O"] == 0.0
  assert metrics["tokenizer"] == {"psnr": 19.6}
  assert metrics["provenance"]["config"] == "shapes_tiny"


def test_wrong_model_scores_the_floor(config, tmp_path):
  metrics = run_eval(config, WrongModel(build_sets(config)), str(tmp_path))["headline"]
  assert metrics["GenEval"] == 0.0 and metrics["GEdit G_O"] == 0.0
  assert metrics["POPE F1"] == 0.0 and metrics["MC acc"] == 0.0 and metrics["count acc"] == 0.0
  assert metrics["und acc"] == 0.0
  assert metrics["WISE"] <= 0.3 + 1e-9          # only the realism/aesthetic weight is left


def test_blurry_oracle_keeps_semantics_and_loses_quality(config, tmp_path):
  model = OracleModel(build_sets(config), noise=8.0, blur=1.0)
  metrics = evaluate(config, model, str(tmp_path), tasks=("geneval", "edit")).metrics
  assert metrics["geneval"]["overall"] >= 0.9
  assert metrics["edit"]["G_SC"] >= 9.0
  assert 5.0 < metrics["edit"]["G_PQ"] < 10.0
  assert "wise" not in metrics and "understanding" not in metrics


def test_oracle_through_a_codec_scores_what_the_codec_keeps(config, tmp_path):
  """A coarse tokenizer (each 16 px patch's mean colour on 2 levels) loses the shapes: the
  oracle drawn through it scores far below the exact oracle."""
  codec = PatchColorCodec(patch=16, levels=2)
  model = OracleModel(build_sets(config), codec=codec)
  metrics = evaluate(config, model, str(tmp_path), tasks=("geneval", "edit")).metrics
  assert metrics["geneval"]["overall"] < 0.5 and metrics["edit"]["G_O"] < 5.0
  fine = OracleModel(build_sets(config), codec=PatchColorCodec(patch=1, levels=256))
  metrics = evaluate(config, fine, str(tmp_path / "fine"), tasks=("edit",)).metrics
  assert metrics["edit"]["G_O"] == 10.0   # a lossless codec changes nothing


def test_outputs_are_in_the_benchmarks_formats(oracle_run, config):
  metrics, out = oracle_run
  outputs = bf.read_geneval_outputs(str(out / "geneval"))
  assert len(outputs) == config.eval.num_geneval
  for record, paths in outputs:     # re-scored from the files on disk: still all correct
    assert geneval.evaluate(parse_image(bf.load_image(paths[0]), config.data.grid), record)[0]
  assert len(bf.read_wise_prompts(str(out / "wise" / "shapes_wise.json"))) == config.eval.num_wise
  assert len(os.listdir(out / "wise" / "images")) == config.eval.num_wise
  rows = bf.read_gedit_rows(str(out / "gedit" / "rows.jsonl"))
  assert len(rows) == config.eval.num_edit
  assert all(os.path.isfile(bf.gedit_paths(str(out / "gedit"), r)[0]) for r in rows)
  questions = bf.read_pope_questions(str(out / "pope" / "shapes_pope_random.json"))
  answers = [json.loads(x) for x in open(out / "pope" / "answers_random.jsonl")]
  assert [a["answer"] for a in answers] == [q["label"] for q in questions]
  report = open(out / "report.md").read()
  for title in ("GenEval-like", "WISE-like", "GEdit-like", "POPE-like", "Visual tokenizer"):
    assert title in report
  assert json.load(open(out / "metrics.json"))["headline"]["GenEval"] == 1.0
  for name in ("geneval_samples.png", "wise_samples.png", "edit_samples.png"):
    assert os.path.isfile(out / "figures" / name)


def test_curves_section_reads_training_events(config, tmp_path):
  writer = SummaryWriter(str(tmp_path / "tb" / "pretrain"))
  for step in range(3):
    writer.add_scalar("pretrain/loss", 3.0 - step, step)
  writer.close()
  result = evaluate(config, OracleModel(build_sets(config)), str(tmp_path / "eval"),
                    tasks=("und",), curves_from=str(tmp_path / "tb"))
  curves = [s for s in result.sections if s.title == "Training curves"]
  assert curves and os.path.isfile(curves[0].figures[0])


class _BadModel(OracleModel):
  def generate(self, prompts, seed):
    return [image.astype(np.float32) / 255 for image in super().generate(prompts, seed)]

  def answer(self, images, questions):
    return super().answer(images, questions)[:-1]


@pytest.mark.parametrize("task,message", [("geneval", "dtype float32"), ("und", "one string")])
def test_bad_model_outputs_are_user_errors(config, tmp_path, task, message):
  with pytest.raises(UserError, match=message):
    evaluate(config, _BadModel(build_sets(config)), str(tmp_path), tasks=(task,))


def test_unknown_task_is_a_user_error(config, tmp_path):
  with pytest.raises(UserError, match="unknown eval task"):
    evaluate(config, OracleModel(build_sets(config)), str(tmp_path), tasks=("mmmu",))


def test_sets_follow_the_config(config):
  sets = build_sets(config)
  assert len(sets.geneval) == 12 and len(sets.und) == 10
  assert [i.prompt for i in build_sets(config).geneval] == [i.prompt for i in sets.geneval]
  reseeded = build_sets(load_config("shapes_tiny", SMALL + ["--config.eval.seed=7"]))
  assert [i.prompt for i in reseeded.wise] != [i.prompt for i in sets.wise]
  keys = prompt_keys(sets)
  assert sets.geneval[0].prompt in keys and sets.wise[0].prompt in keys
  assert any(" => " + sets.edit[0].instruction in k for k in keys)


def test_several_samples_per_prompt(tmp_path):
  config = load_config("shapes_tiny", SMALL + ["--config.eval.samples_per_prompt=2"])
  metrics = evaluate(config, OracleModel(build_sets(config), noise=4.0), str(tmp_path),
                     tasks=("geneval",)).metrics
  assert metrics["geneval"]["images"] == 2 * config.eval.num_geneval
  outputs = bf.read_geneval_outputs(str(tmp_path / "geneval"))
  assert all(len(paths) == 2 for _, paths in outputs)
  first, second = (bf.load_image(p) for p in outputs[0][1])
  assert not np.array_equal(first, second)      # another seed, another sample


class _SeedRecorder(OracleModel):
  def __init__(self, sets):
    super().__init__(sets)
    self.calls = []

  def generate(self, prompts, seed):
    self.calls.append((tuple(prompts), seed))
    return super().generate(prompts, seed)


def test_sample_seed_reseeds_sampling_but_keeps_the_items(config, tmp_path):
  runs = {}
  for sample_seed in (None, 99):
    model = _SeedRecorder(build_sets(config))
    evaluate(config, model, str(tmp_path / str(sample_seed)), tasks=("wise",),
             sample_seed=sample_seed)
    runs[sample_seed] = model.calls
  (default_prompts, default_seed), = runs[None]
  (prompts, seed), = runs[99]
  assert default_seed == config.eval.seed and seed == 99
  assert prompts == default_prompts


def test_standard_errors_by_hand():
  from arm_jax.eval import editbench, geneval, wise
  rows = [{"tag": "a", "correct": c} for c in (1, 0, 1, 1)] + \
         [{"tag": "b", "correct": c} for c in (0, 0)]
  g = geneval.summarize(rows)
  # task a: p = 3/4 over 4 images, task b: p = 0 over 2; se = sqrt(sum p(1-p)/n) / 2 tasks
  assert g["overall_se"] == pytest.approx((0.75 * 0.25 / 4) ** 0.5 / 2)
  e = editbench.summarize([{"G_SC": s, "G_PQ": 10.0, "G_O": s, "followed": s > 0, "kind": k}
                           for s, k in ((10.0, "add"), (0.0, "add"), (10.0, "move"))])
  assert e["G_O_se"] == pytest.approx(np.std([10, 0, 10], ddof=1) / 3 ** 0.5)
  assert e["followed_kinds"] == {"add": 0.5, "move": 1.0} and e["G_PQ_se"] == 0.0
  w = wise.summarize([{"Subcategory": "x", "wiscore": v, "consistency": 2} for v in (1.0, 0.0)])
  assert w["wiscore_se"] == pytest.approx(0.5)
