"""arm-jax demo's stage runner: markers skip finished stages, a failed stage is re-run next time.

The stages themselves are library calls tested in their own folders; here they are stubs that
count their calls, so the runner's bookkeeping is checked without training anything.
"""
import json
import os
import sys
import types

import pytest

from arm_jax import demo


@pytest.fixture
def stub_stages(monkeypatch):
  calls = []
  module = types.ModuleType("stub_stages")
  broken = {"b": True}

  def make(name):
    def stage(config, workdir):
      calls.append(name)
      if name == "b" and broken["b"]:
        raise RuntimeError("stage b failed")
      return {"stage": name}
    return stage

  for name in "abc":
    setattr(module, name, make(name))
  monkeypatch.setitem(sys.modules, "stub_stages", module)
  stages = tuple((name, f"stub_stages:{name}", f"stage {name}") for name in "abc")
  return stages, calls, broken


def test_rerun_skips_finished_stages_and_retries_the_failed_one(tmp_path, stub_stages):
  stages, calls, broken = stub_stages
  with pytest.raises(RuntimeError, match="stage b failed"):
    demo.run_stages(None, str(tmp_path), stages=stages, log=lambda _: None)
  assert calls == ["a", "b"]
  assert (tmp_path / "stages" / "a.done.json").exists()
  assert not (tmp_path / "stages" / "b.done.json").exists()

  broken["b"] = False
  lines = []
  done = demo.run_stages(None, str(tmp_path), stages=stages, log=lines.append)
  assert calls == ["a", "b", "b", "c"]
  assert any("a: done earlier" in line for line in lines)
  assert done["c"]["result"] == {"stage": "c"}
  timings = json.loads((tmp_path / "stages" / "timings.json").read_text())
  assert sorted(timings) == ["a", "b", "c"] and all(t >= 0 for t in timings.values())

  demo.run_stages(None, str(tmp_path), stages=stages, log=lambda _: None)
  assert calls == ["a", "b", "b", "c"]            # everything done: nothing runs
  demo.run_stages(None, str(tmp_path), stages=stages, fresh=True, log=lambda _: None)
  assert calls == ["a", "b", "b", "c", "a", "b", "c"]


def test_every_demo_stage_resolves_to_a_library_function():
  for name, target, _ in demo.STAGES:
    assert callable(demo._resolve(target)), name


def test_a_relative_workdir_is_made_absolute(tmp_path, stub_stages, monkeypatch):
  # orbax refuses relative checkpoint paths; `make demo` passes --workdir runs/demo.
  stages, _, broken = stub_stages
  broken["b"] = False
  seen = []
  monkeypatch.setattr(sys.modules["stub_stages"], "c", lambda config, workdir: seen.append(workdir))
  monkeypatch.chdir(tmp_path)
  demo.run_stages(None, "runs/demo", stages=stages, log=lambda _: None)
  assert seen == [str(tmp_path / "runs" / "demo")]


def test_report_shows_the_tokenizer_metrics_and_reconstructions(tmp_path):
  from arm_jax import demo_report
  os.makedirs(tmp_path / "tokenizer")
  json.dump({"teacher": {"zero_shot": 0.5}, "tokenizer": {"psnr": 24.5, "zero_shot": 0.45}},
            open(tmp_path / "tokenizer" / "tokenizer_metrics.json", "w"))
  section = demo_report._tokenizer_section(str(tmp_path))
  assert "24.5" in section.body and not section.figures     # no grid written: none shown
  open(tmp_path / "tokenizer" / "tokenizer_reconstructions.png", "wb").close()
  assert demo_report._tokenizer_section(str(tmp_path)).figures == [
      str(tmp_path / "tokenizer" / "tokenizer_reconstructions.png")]


def test_report_prints_the_ceiling_and_the_sampling_se_beside_each_change(tmp_path):
  from arm_jax import demo_report
  os.makedirs(tmp_path / "tokenizer")
  json.dump({"teacher": {}, "tokenizer": {"psnr": 30.0}, "ceiling": {"exact_scenes": 0.6875}},
            open(tmp_path / "tokenizer" / "tokenizer_metrics.json", "w"))
  assert "| exact_scenes | 0.688 |" in demo_report._tokenizer_section(str(tmp_path)).body
  for name, geneval in (("sft", 0.5), ("rl", 0.625)):
    os.makedirs(tmp_path / "eval" / name)
    json.dump({"headline": {"GenEval": geneval}, "headline_se": {"GenEval": 0.0625},
               "understanding": {"kinds": {"color": geneval}}},
              open(tmp_path / "eval" / name / "metrics.json", "w"))
  body = demo_report._before_after(str(tmp_path)).body
  assert "| GenEval | 0.500 | 0.625 | 0.125 | 0.062 |" in body
  assert "| color | 0.500 | 0.625 |" in body
