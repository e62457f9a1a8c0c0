"""A lazily read array: a shape and `read(index)`; placed on a mesh or written out piecewise.

Importers describe every parameter this way (slices of checkpoint tensors, stacked, transposed,
or freshly initialised rows), so nothing ever materialises a whole model on the host:
`place` reads one device slice at a time, `chunks` reads a bounded block at a time.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterator

import jax
import numpy as np

Index = tuple[slice, ...]
_BLOCK = 2**26   # bytes read per block when filling a buffer or writing a file


def full_index(index: Index | None, shape: tuple[int, ...]) -> Index:
  """Any tuple of unit-step slices (possibly short, possibly open) -> explicit start:stop."""
  index = tuple(index or ()) + (slice(None),) * (len(shape) - len(index or ()))
  out = []
  for s, n in zip(index, shape):
    start, stop, step = s.indices(n)
    if step != 1:
      raise ValueError(f"only unit-step slices are read, got {s}")
    out.append(slice(start, stop))
  return tuple(out)


@dataclasses.dataclass(frozen=True)
class LazyArray:
  """`read(index)` returns `array[index]` (any float dtype; callers cast) for full_index'ed
  slices."""
  shape: tuple[int, ...]
  read: Callable[[Index], np.ndarray]

  def get(self, index: Index | None = None) -> np.ndarray:
    return self.read(full_index(index, self.shape))

  def chunks(self, max_bytes: int = _BLOCK, itemsize: int = 4) -> Iterator[np.ndarray]:
    """Consecutive blocks along axis 0, each at most ~max_bytes (at least one row)."""
    if not self.shape:
      yield self.get()
      return
    for rows in _row_blocks(self.shape, max_bytes // itemsize):
      yield self.get((rows,))

  def fill(self, index: Index, dtype) -> np.ndarray:
    """`array[index]` as `dtype`, read into one buffer a bounded block of rows at a time (so
    the only full-size host copy is the buffer itself)."""
    index = full_index(index, self.shape)
    shape = tuple(s.stop - s.start for s in index)
    out = np.empty(shape, dtype)
    if not shape:
      out[...] = self.read(index)
      return out
    for rows in _row_blocks(shape, _BLOCK // out.dtype.itemsize):
      sub = slice(index[0].start + rows.start, index[0].start + rows.stop)
      out[rows] = self.read((sub,) + index[1:])
    return out

  def place(self, dtype, sharding: jax.sharding.Sharding) -> jax.Array:
    """A jax.Array with `sharding`: each distinct device slice is read once, copied to the
    devices that hold it, and dropped before the next is read."""
    groups: dict[tuple, tuple[Index, list]] = {}
    for device, index in sharding.addressable_devices_indices_map(self.shape).items():
      index = full_index(index, self.shape)
      key = tuple((s.start, s.stop) for s in index)
      groups.setdefault(key, (index, []))[1].append(device)
    arrays = []
    for index, devices in groups.values():
      host = self.fill(index, dtype)
      arrays += [jax.device_put(host, d) for d in devices]
      del host
    return jax.make_array_from_single_device_arrays(self.shape, sharding, arrays)


def _row_blocks(shape: tuple[int, ...], max_elems: int) -> Iterator[slice]:
  """Slices of axis 0 covering `shape`, each at most ~max_elems elements (>= one row)."""
  step = max(1, max_elems // max(math.prod(shape[1:]), 1))
  for start in range(0, shape[0], step):
    yield slice(start, min(start + step, shape[0]))
