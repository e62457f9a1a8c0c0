"""Reading scalar curves from tensorboardX event files without TensorFlow."""
import os

import pytest
from tensorboardX import SummaryWriter

from arm_jax.errors import UserError
from arm_jax.eval.curves import event_files, read_scalars


def _write(logdir, points, tag="pretrain/loss"):
  writer = SummaryWriter(str(logdir))
  for step, value in points:
    writer.add_scalar(tag, value, step)
  writer.close()


def test_reads_every_tag_of_every_run_sorted_by_step(tmp_path):
  _write(tmp_path / "tb" / "pretrain", [(2, 1.5), (1, 2.0), (3, 1.25)])
  _write(tmp_path / "tb" / "rl", [(10, 0.5)], tag="rl/reward")
  curves = read_scalars(str(tmp_path / "tb"))
  assert curves == {"pretrain/loss": [(1, 2.0), (2, 1.5), (3, 1.25)], "rl/reward": [(10, 0.5)]}
  assert read_scalars(str(tmp_path / "tb"), tags=("rl/reward",)) == {"rl/reward": [(10, 0.5)]}


def test_a_record_cut_short_loses_only_itself(tmp_path):
  _write(tmp_path, [(1, 1.0), (2, 2.0)])
  (path,) = event_files(str(tmp_path))
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[:-7])                         # a writer killed mid-record
  assert read_scalars(path) == {"pretrain/loss": [(1, 1.0)]}


def test_missing_logs_are_a_user_error(tmp_path):
  with pytest.raises(UserError, match="no TensorBoard logs"):
    read_scalars(os.path.join(tmp_path, "nowhere"))
