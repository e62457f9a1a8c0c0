"""MetricsLog: jsonl rows read back, and a failed write is one line that says what to do."""
import errno

import pytest

from arm_jax.errors import UserError
from arm_jax.train.metrics import MetricsLog, MetricsWriteError, read_jsonl


class _FullDisk:
  """A file object whose writes fail like a full filesystem."""

  def write(self, text):
    raise OSError(errno.ENOSPC, "No space left on device")

  def flush(self):
    pass

  def close(self):
    pass


def test_rows_are_averaged_between_writes(tmp_path):
  log = MetricsLog(str(tmp_path), "pretrain")
  log.update({"loss": 2.0})
  log.update({"loss": 4.0})
  log.write(1)
  log.update({"loss": 1.0})
  log.write(2, {"lr": 0.5})
  log.close()
  rows = read_jsonl(str(tmp_path / "metrics" / "pretrain.jsonl"))
  assert rows == [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 1.0, "lr": 0.5}]


def test_disk_full_on_metrics_write_is_one_line_and_earlier_rows_survive(tmp_path):
  log = MetricsLog(str(tmp_path), "pretrain")
  log.write(1, {"loss": 1.0})
  real = log.jsonl
  log.jsonl = _FullDisk()
  with pytest.raises(MetricsWriteError) as e:
    log.write(2, {"loss": 0.5})
  message = str(e.value)
  assert isinstance(e.value, UserError) and "\n" not in message
  assert "step 2" in message and "No space left on device" in message and "rerun" in message
  log.jsonl = real
  log.close()
  # A later run appends to the same file; the row written before the failure is still there.
  again = MetricsLog(str(tmp_path), "pretrain")
  again.write(2, {"loss": 0.5})
  again.close()
  assert [r["step"] for r in read_jsonl(str(tmp_path / "metrics" / "pretrain.jsonl"))] == [1, 2]
