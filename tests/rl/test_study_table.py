import pytest

from arm_jax.rl import study


def _scores(sft, t2i, edit):
  return {"SFT": {"GenEval": sft[0], "GEdit G_O": sft[1]},
          "T2I-RL": {"GenEval": t2i[0], "GEdit G_O": t2i[1]},
          "Edit-RL": {"GenEval": edit[0], "GEdit G_O": edit[1]}}


def test_aggregate_mean_std_and_paired_delta():
  per_seed = {0: _scores((0.5, 5.0), (0.6, 5.0), (0.5, 6.0)),
              1: _scores((0.4, 5.0), (0.6, 5.4), (0.4, 6.2)),
              2: _scores((0.6, 5.0), (0.9, 5.2), (0.6, 5.8))}
  table = study.aggregate(per_seed, ["SFT", "T2I-RL", "Edit-RL"])
  g = table["T2I-RL"]["GenEval"]
  assert g["mean"] == pytest.approx(0.7) and g["std"] == pytest.approx(0.17320508)  # ddof 1
  # paired deltas 0.1, 0.2, 0.3 -> mean 0.2, std 0.1
  assert g["delta"] == pytest.approx(0.2) and g["delta_std"] == pytest.approx(0.1)
  lines = "\n".join(study.synergy_lines(table))
  assert "T2I-RL -> GenEval (own task): +0.200 +/- 0.100 vs SFT: up" in lines
  assert "T2I-RL -> GEdit G_O (other task): +0.200 +/- 0.200 vs SFT: no clear change" in lines
  assert "Edit-RL -> GenEval (other task): +0.000" in lines
