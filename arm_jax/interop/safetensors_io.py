"""Safetensors in and out, one tensor (or one slice of one) at a time.

Reading parses the header and `pread`s exactly the bytes of the rows asked for: nothing is
memory-mapped, so a 7B import never has the whole checkpoint resident (mapped pages count as
host memory until the kernel drops them). Writing streams each tensor's chunks straight to disk
after a header computed from shapes alone, so no file is ever assembled in memory.

Only safetensors are read. Pickle checkpoints (.bin/.pt/.pth/.ckpt) are refused, never
unpickled: loading one runs arbitrary code.

    index = TensorIndex.open(hf_dir)                  # model.safetensors or a sharded index
    index.read("model.norm.weight")                   # np.ndarray
    index.read(name, (slice(0, 128), slice(None)))    # just those rows
    write_sharded(out_dir, "model", specs, max_bytes)
"""
from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import struct
from typing import Callable, Iterable, Sequence

import ml_dtypes
import numpy as np

from arm_jax.errors import UserError

DTYPES = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8),
    "I16": np.dtype(np.int16), "U16": np.dtype(np.uint16), "I32": np.dtype(np.int32),
    "U32": np.dtype(np.uint32), "I64": np.dtype(np.int64), "U64": np.dtype(np.uint64),
    "F16": np.dtype(np.float16), "BF16": np.dtype(ml_dtypes.bfloat16),
    "F32": np.dtype(np.float32), "F64": np.dtype(np.float64),
}
CODES = {v: k for k, v in DTYPES.items()}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_MAX_HEADER = 100 * 2**20


class CheckpointFormatError(UserError):
  """A weights file or directory that cannot be read as safetensors."""


class PickleCheckpointError(CheckpointFormatError):
  """A pickle checkpoint: refused, never unpickled."""


class MissingTensorError(CheckpointFormatError):
  """A tensor the model needs is not in the checkpoint."""


def pickle_error(path: str) -> PickleCheckpointError:
  return PickleCheckpointError(
      f"{path} is a pickle checkpoint, which is never unpickled (it can run arbitrary code); "
      f"convert it once with transformers: AutoModelForCausalLM.from_pretrained(DIR)"
      f".save_pretrained(OUT, safe_serialization=True), then use OUT")


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  """Where one tensor's bytes are: file, byte offset of element 0, dtype, shape."""
  file: str
  offset: int
  dtype: np.dtype
  shape: tuple[int, ...]


def read_header(path: str) -> tuple[dict[str, TensorInfo], dict]:
  """Parses a .safetensors header -> ({name: TensorInfo}, __metadata__)."""
  try:
    with open(path, "rb") as f:
      raw = f.read(8)
      (n,) = struct.unpack("<Q", raw) if len(raw) == 8 else (None,)
      if n is None or n > _MAX_HEADER:
        raise ValueError("bad header length")
      header = json.loads(f.read(n))
  except (OSError, ValueError) as e:
    raise CheckpointFormatError(f"{path} is not a readable safetensors file ({e}); re-save it "
                                f"with safetensors") from e
  meta = header.pop("__metadata__", None) or {}
  infos = {}
  for name, h in header.items():
    if h["dtype"] not in DTYPES:
      raise CheckpointFormatError(f"tensor {name} in {path} has dtype {h['dtype']}, which is not "
                                  f"supported; re-save it as F32, BF16 or F16")
    infos[name] = TensorInfo(path, 8 + n + h["data_offsets"][0], DTYPES[h["dtype"]],
                             tuple(h["shape"]))
  return infos, meta


def _index_files(directory: str) -> list[str]:
  """The .safetensors files of a checkpoint directory (via its index json when it has one)."""
  indexes = sorted(glob.glob(os.path.join(directory, "*.safetensors.index.json")))
  if indexes:
    with open(indexes[0]) as f:
      weight_map = json.load(f).get("weight_map", {})
    files = sorted(set(weight_map.values()))
    missing = [p for p in files if not os.path.isfile(os.path.join(directory, p))]
    if missing:
      raise CheckpointFormatError(f"{indexes[0]} lists {missing[0]}, which is not in "
                                  f"{directory}; copy every shard the index names")
    return [os.path.join(directory, p) for p in files]
  return sorted(glob.glob(os.path.join(directory, "*.safetensors")))


def check_safe(path: str) -> None:
  """Refuses pickle checkpoints (a file, or a directory with no safetensors but pickles)."""
  if os.path.isfile(path) and path.endswith(PICKLE_SUFFIXES):
    raise pickle_error(path)
  if os.path.isdir(path) and not glob.glob(os.path.join(path, "*.safetensors")):
    pickles = sorted(p for p in os.listdir(path) if p.endswith(PICKLE_SUFFIXES))
    if pickles:
      raise pickle_error(os.path.join(path, pickles[0]))


class TensorIndex:
  """Name -> tensor over all safetensors files of one checkpoint; reads slices on demand."""

  def __init__(self, infos: dict[str, TensorInfo], where: str):
    self.infos = infos
    self.where = where

  @staticmethod
  def open(directory: str) -> "TensorIndex":
    check_safe(directory)
    if not os.path.isdir(directory):
      raise CheckpointFormatError(f"{directory} is not a directory; give the directory holding "
                                  f"the .safetensors files")
    files = _index_files(directory)
    if not files:
      raise CheckpointFormatError(f"no .safetensors files in {directory}")
    infos = {}
    for path in files:
      infos.update(read_header(path)[0])
    return TensorIndex(infos, directory)

  def __contains__(self, name: str) -> bool:
    return name in self.infos

  def names(self) -> list[str]:
    return list(self.infos)

  def info(self, name: str) -> TensorInfo:
    if name not in self.infos:
      raise MissingTensorError(f"tensor {name} is missing from the checkpoint in {self.where}; "
                               f"the files are incomplete or from another architecture")
    return self.infos[name]

  def expect(self, name: str, shape: Sequence[int]) -> TensorInfo:
    """The tensor's info, or a one-line error naming it when its shape is not `shape`."""
    info = self.info(name)
    if info.shape != tuple(shape):
      raise CheckpointFormatError(
          f"tensor {name} in {info.file} has shape {info.shape} but the config implies "
          f"{tuple(shape)}; the weights do not match their config.json")
    return info

  def read(self, name: str, index: tuple[slice, ...] | None = None) -> np.ndarray:
    """The tensor, or `tensor[index]` for a tuple of unit-step slices, reading only the rows
    the first slice covers (rows are contiguous on disk)."""
    info = self.info(name)
    shape = info.shape
    index = tuple(index or ()) + (slice(None),) * (len(shape) - len(index or ()))
    if not shape:
      return _pread(info.file, info.offset, 1, info.dtype).reshape(())
    rows = range(*index[0].indices(shape[0]))
    row_elems = math.prod(shape[1:])
    start = info.offset + rows.start * row_elems * info.dtype.itemsize
    block = _pread(info.file, start, len(rows) * row_elems, info.dtype)
    block = block.reshape((len(rows),) + shape[1:])
    return block[(slice(None),) + index[1:]]


def _pread(path: str, offset: int, count: int, dtype: np.dtype) -> np.ndarray:
  out = np.empty((count,), dtype)
  view = out.view(np.uint8)
  with open(path, "rb", buffering=0) as f:
    f.seek(offset)
    got = f.readinto(memoryview(view))
  if got != view.size:
    raise CheckpointFormatError(f"{path} is truncated (wanted {view.size} bytes at {offset}, "
                                f"got {got}); copy the file again")
  return out


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TensorSpec:
  """A tensor to write: `chunks()` yields consecutive pieces along axis 0 (one or many)."""
  name: str
  shape: tuple[int, ...]
  dtype: np.dtype
  chunks: Callable[[], Iterable[np.ndarray]]

  @property
  def nbytes(self) -> int:
    return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def write_file(path: str, specs: Sequence[TensorSpec], metadata: dict | None = None) -> None:
  """One .safetensors file, streamed: header from the specs, then each tensor's chunks."""
  header, offset = {}, 0
  if metadata:
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
  for s in specs:
    header[s.name] = {"dtype": CODES[np.dtype(s.dtype)], "shape": list(s.shape),
                      "data_offsets": [offset, offset + s.nbytes]}
    offset += s.nbytes
  raw = json.dumps(header, separators=(",", ":")).encode()
  raw += b" " * (-len(raw) % 8)   # the data section starts 8-byte aligned
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    for s in specs:
      written = 0
      for chunk in s.chunks():
        chunk = np.ascontiguousarray(chunk, dtype=s.dtype)
        if chunk.shape[1:] != s.shape[1:]:
          raise ValueError(f"chunk of {s.name} has shape {chunk.shape}, want (*, {s.shape[1:]})")
        f.write(memoryview(chunk.reshape(-1).view(np.uint8)))
        written += chunk.nbytes
      if written != s.nbytes:
        raise ValueError(f"{s.name}: chunks gave {written} bytes, want {s.nbytes}")
  os.replace(tmp, path)


def write_sharded(directory: str, prefix: str, specs: Sequence[TensorSpec], max_bytes: int,
                  metadata: dict | None = None) -> list[str]:
  """Writes `<prefix>.safetensors`, or `<prefix>-0000i-of-0000n.safetensors` files plus
  `<prefix>.safetensors.index.json` (the Hugging Face layout) when they exceed `max_bytes`.
  Returns the names of the files written."""
  groups, size = [[]], 0
  for s in specs:
    if groups[-1] and size + s.nbytes > max_bytes:
      groups.append([])
      size = 0
    groups[-1].append(s)
    size += s.nbytes
  os.makedirs(directory, exist_ok=True)
  if len(groups) == 1:
    names = [f"{prefix}.safetensors"]
  else:
    names = [f"{prefix}-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
  for name, group in zip(names, groups):
    write_file(os.path.join(directory, name), group, metadata)
  if len(groups) > 1:
    index = {"metadata": {"total_size": sum(s.nbytes for s in specs)},
             "weight_map": {s.name: n for n, g in zip(names, groups) for s in g}}
    names.append(f"{prefix}.safetensors.index.json")
    with open(os.path.join(directory, names[-1]), "w") as f:
      json.dump(index, f, indent=2)
  return names
