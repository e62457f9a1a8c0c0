"""Scalar curves from TensorBoard event files, read without TensorFlow or TensorBoard.

An event file is a TFRecord stream: per record a little-endian uint64 length, a uint32 masked
CRC of it, the bytes of one `Event` protobuf and a uint32 masked CRC of those. The protobuf
classes come from tensorboardX (already a dependency: the trainer writes events with it). A
record cut short by a crash or a live writer ends the read of that file; nothing else is lost.

    curves = read_scalars("runs/demo/tb")          # {"pretrain/loss": [(step, value), ...], ...}
"""
from __future__ import annotations

import glob
import os
import struct

import numpy as np
from arm_jax.errors import UserError
from arm_jax.train.metrics import import_tensorboardx

import_tensorboardx()
from tensorboardX.proto import event_pb2  # noqa: E402


def event_files(path: str) -> list[str]:
  """An event file, or every event file under a directory (recursively), sorted."""
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise UserError(f"no TensorBoard logs at {path}; give a run's tb/ directory or an event file")
  return sorted(glob.glob(os.path.join(path, "**", "events.out.tfevents.*"), recursive=True))


def _records(path: str):
  with open(path, "rb") as f:
    while True:
      header = f.read(12)
      if len(header) < 12:
        return
      (length,) = struct.unpack("<Q", header[:8])
      data = f.read(length)
      if len(data) < length or len(f.read(4)) < 4:
        return
      yield data


def _scalar(value) -> float | None:
  if value.HasField("simple_value"):
    return float(value.simple_value)
  if value.HasField("tensor"):
    t = value.tensor
    if t.float_val:
      return float(t.float_val[0])
    if t.double_val:
      return float(t.double_val[0])
    if t.tensor_content and t.dtype == 1:            # DT_FLOAT scalar as raw bytes
      return float(np.frombuffer(t.tensor_content, "<f4")[0])
  return None


def read_scalars(path: str, tags: tuple[str, ...] | None = None) -> dict[str, list[tuple]]:
  """Event file(s) under `path` -> {tag: [(step, value), ...]} sorted by step.

  A step logged twice (a resumed run rewriting its tail) keeps the later value.
  """
  curves: dict[str, dict[int, float]] = {}
  for file in event_files(path):
    for data in _records(file):
      event = event_pb2.Event.FromString(data)
      if not event.HasField("summary"):
        continue
      for value in event.summary.value:
        if tags is not None and value.tag not in tags:
          continue
        scalar = _scalar(value)
        if scalar is not None:
          curves.setdefault(value.tag, {})[int(event.step)] = scalar
  return {tag: sorted(points.items()) for tag, points in sorted(curves.items())}
