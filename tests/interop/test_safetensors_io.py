"""Streaming safetensors reader/writer: slices, sharded indexes, bf16, refusals."""
import json
import os
import pickle

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from arm_jax.interop.safetensors_io import (CheckpointFormatError, MissingTensorError,
                                            PickleCheckpointError, TensorIndex, TensorSpec,
                                            check_safe, write_sharded)


def _specs(arrays):
  """Each array written as two chunks along axis 0 (exercises streaming)."""
  return [TensorSpec(n, a.shape, a.dtype, lambda a=a: [a[:1], a[1:]]) for n, a in arrays.items()]


def test_sharded_write_then_sliced_reads(tmp_path):
  rng = np.random.default_rng(0)
  arrays = {"a.weight": rng.standard_normal((6, 5)).astype(np.float32),
            "b.weight": rng.standard_normal((4, 3, 2)).astype(ml_dtypes.bfloat16),
            "c.bias": rng.standard_normal((7,)).astype(np.float16)}
  names = write_sharded(str(tmp_path), "model", _specs(arrays), max_bytes=50)
  assert names[-1] == "model.safetensors.index.json" and len(names) == 4
  weight_map = json.load(open(tmp_path / names[-1]))["weight_map"]
  assert len(set(weight_map.values())) == 3
  index = TensorIndex.open(str(tmp_path))
  for name, a in arrays.items():
    got = index.read(name)
    assert got.dtype == a.dtype and got.shape == a.shape
    np.testing.assert_array_equal(got, a)
  np.testing.assert_array_equal(index.read("a.weight", (slice(2, 4), slice(1, 3))),
                                arrays["a.weight"][2:4, 1:3])
  np.testing.assert_array_equal(index.read("b.weight", (slice(1, 2),)), arrays["b.weight"][1:2])


def test_single_file_is_readable_by_the_safetensors_library(tmp_path):
  arrays = {"x": np.arange(12, dtype=np.float32).reshape(3, 4),
            "y": np.ones((5,), np.float16)}
  names = write_sharded(str(tmp_path), "model", _specs(arrays), max_bytes=2**20,
                        metadata={"format": "pt"})
  assert names == ["model.safetensors"]
  loaded = load_file(str(tmp_path / "model.safetensors"))
  for name, a in arrays.items():
    np.testing.assert_array_equal(loaded[name], a)
  # ... and the reader reads what the library writes.
  save_file({"z": np.full((2, 2), 3.0, np.float32)}, str(tmp_path / "other.safetensors"))
  np.testing.assert_array_equal(TensorIndex.open(str(tmp_path)).read("z"), np.full((2, 2), 3.0))


class _Boom:
  def __reduce__(self):   # unpickling this would raise: proof that nothing is unpickled
    return (os.abort, ())


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.ckpt"])
def test_pickle_checkpoints_are_refused_not_unpickled(tmp_path, name):
  with open(tmp_path / name, "wb") as f:
    pickle.dump(_Boom(), f)
  for path in (str(tmp_path), str(tmp_path / name)):
    with pytest.raises(PickleCheckpointError, match="safe_serialization=True"):
      check_safe(path)
  with pytest.raises(PickleCheckpointError, match=name):
    TensorIndex.open(str(tmp_path))


def test_missing_tensor_and_wrong_shape_are_named(tmp_path):
  save_file({"w": np.zeros((2, 3), np.float32)}, str(tmp_path / "model.safetensors"))
  index = TensorIndex.open(str(tmp_path))
  with pytest.raises(MissingTensorError, match="tensor v is missing"):
    index.read("v")
  with pytest.raises(CheckpointFormatError, match=r"tensor w .*\(2, 3\).*\(3, 2\)"):
    index.expect("w", (3, 2))


def test_index_naming_an_absent_shard_and_truncated_file(tmp_path):
  save_file({"w": np.zeros((4, 4), np.float32)}, str(tmp_path / "a.safetensors"))
  with open(tmp_path / "model.safetensors.index.json", "w") as f:
    json.dump({"weight_map": {"w": "a.safetensors", "v": "b.safetensors"}}, f)
  with pytest.raises(CheckpointFormatError, match="b.safetensors"):
    TensorIndex.open(str(tmp_path))
  os.remove(tmp_path / "model.safetensors.index.json")
  raw = (tmp_path / "a.safetensors").read_bytes()
  (tmp_path / "a.safetensors").write_bytes(raw[:-8])
  with pytest.raises(CheckpointFormatError, match="truncated"):
    TensorIndex.open(str(tmp_path)).read("w")
