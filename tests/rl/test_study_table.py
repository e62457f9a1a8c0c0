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


def test_a_study_out_dir_refuses_other_settings(tmp_path):
  from arm_jax.config import load_config
  from arm_jax.errors import UserError
  out = str(tmp_path)
  study.check_settings(load_config("shapes_tiny", []), out)
  study.check_settings(load_config("shapes_tiny", []), out)                   # same: resumes
  study.check_settings(load_config("shapes_tiny", ["--config.rl.seeds=(0,1,2,3)"]), out)
  for changed in ("--config.rl.cell_credit=1.0", "--config.decode.edit_text_scale=1.0",
                  "--config.eval.num_edit=7"):
    with pytest.raises(UserError, match=r"other settings \(" + changed[9:].split("=")[0]):
      study.check_settings(load_config("shapes_tiny", [changed]), out)
