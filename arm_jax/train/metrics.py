"""Training metrics: averaged between log points with clu, written as TensorBoard events + jsonl.

TensorBoard files come from tensorboardX (clu's writers would import TensorFlow). The jsonl twin
(`<workdir>/metrics/<stage>.jsonl`) is what reports and tests read without any TensorBoard code.
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np
from clu import metrics as clu_metrics

from arm_jax.errors import UserError


class MetricsWriteError(UserError):
  """The metrics file could not be written (disk full, read-only or removed directory)."""


def import_tensorboardx():
  """The tensorboardX package, imported without torch.

  tensorboardX imports torch whenever it is installed (only to accept torch tensors), which costs
  seconds to tens of seconds on a cold start; we only ever log Python floats.
  """
  import sys
  if "tensorboardX" not in sys.modules and "torch" not in sys.modules:
    sys.modules["torch"] = None   # `import torch` raises ImportError inside tensorboardX only
    try:
      import tensorboardX  # noqa: F401
    finally:
      del sys.modules["torch"]
  import tensorboardX
  return tensorboardX


def _summary_writer(logdir: str):
  return import_tensorboardx().SummaryWriter(logdir, flush_secs=10)


class MetricsLog:
  """update() every step with scalar metrics; write(step) averages, logs and resets."""

  def __init__(self, workdir: str, stage: str):
    self.stage = stage
    self.writer = None
    self.jsonl = None
    self._acc: dict[str, clu_metrics.Average] = {}
    if jax.process_index() == 0:
      self.writer = _summary_writer(os.path.join(workdir, "tb", stage))
      os.makedirs(os.path.join(workdir, "metrics"), exist_ok=True)
      self.path = os.path.join(workdir, "metrics", f"{stage}.jsonl")
      self.jsonl = open(self.path, "a")

  def update(self, step_metrics: dict) -> None:
    for name, value in step_metrics.items():
      m = clu_metrics.Average.from_model_output(np.asarray(value, np.float32))
      self._acc[name] = self._acc[name].merge(m) if name in self._acc else m

  def write(self, step: int, extra: dict | None = None) -> dict[str, float]:
    values = {k: float(m.compute()) for k, m in self._acc.items()}
    values.update(extra or {})
    self._acc = {}
    self.scalars(step, values)
    return values

  def scalars(self, step: int, values: dict[str, float]) -> None:
    if self.writer is None:
      return
    for name, value in values.items():
      self.writer.add_scalar(f"{self.stage}/{name}", value, step)
    try:
      self.jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
      self.jsonl.flush()
    except OSError as e:
      # A row cut short here is skipped by read_jsonl, so the rerun appends cleanly.
      raise MetricsWriteError(
          f"cannot write metrics at step {step} to {self.path} ({e.strerror or e}); free disk "
          f"space or fix the directory, then rerun the same command: it resumes from the last "
          f"checkpoint") from e

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()
      self.jsonl.close()


def read_jsonl(path: str) -> list[dict]:
  """All rows of a metrics jsonl file; a row cut short by a crash is ignored."""
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return rows
