"""A synthetic, learnable token source with the real batch contract, for tests and benchmarks.

Each sequence is an arithmetic progression modulo the vocabulary (random start and stride per
row), so a model can learn it and the loss falls. It is a grain MapDataset, so the iterator state
checkpoints exactly like the real pipelines'.
"""
from __future__ import annotations

import grain
import numpy as np


def _example(index: int, *, vocab_size: int, seq_len: int, seed: int) -> dict[str, np.ndarray]:
  rng = np.random.default_rng([seed, index])
  start, stride = rng.integers(vocab_size), rng.integers(1, 8)
  seq = (start + stride * np.arange(seq_len + 1)) % vocab_size
  mask = np.ones(seq_len, np.float32)
  mask[: seq_len // 8] = 0.0   # like a prompt: the first tokens are context, not targets
  return {"inputs": seq[:-1].astype(np.int32), "targets": seq[1:].astype(np.int32),
          "loss_mask": mask}


def synthetic_dataset(vocab_size: int, batch_size: int, seq_len: int, seed: int = 0,
                      process_index: int = 0, process_count: int = 1) -> grain.MapDataset:
  """Batches {inputs, targets: [batch, seq_len] int32, loss_mask: [batch, seq_len] f32}.

  Each process gets batch_size / process_count rows of every global batch: the contiguous
  block [process_index * local, (process_index + 1) * local), which is where
  `jax.make_array_from_process_local_data` puts them, so N processes assemble exactly the global
  batch one process would load (same rows, same order).
  """
  local = batch_size // process_count

  def global_index(i: int) -> int:   # the i-th example this process reads, in the global stream
    step, row = divmod(int(i), local)
    return step * batch_size + process_index * local + row

  ds = grain.MapDataset.range((2**31 - 1) // batch_size * local)
  ds = ds.map(lambda i: _example(global_index(i), vocab_size=vocab_size, seq_len=seq_len,
                                 seed=seed))
  return ds.batch(local, drop_remainder=True)


def synthetic_iterator(vocab_size: int, batch_size: int, seq_len: int, seed: int = 0,
                       process_index: int = 0, process_count: int = 1):
  """A checkpointable grain iterator over `synthetic_dataset`."""
  return iter(synthetic_dataset(vocab_size, batch_size, seq_len, seed, process_index,
                                process_count))
