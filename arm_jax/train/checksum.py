"""Checksums of saved train state, so a restore can tell the values it read are the ones saved.

Orbax's own integrity data covers only its indexes: tensorstore checks a CRC-32C on each OCDBT
manifest and b-tree node (and zarr3 on its shard index), but array chunks carry none, so a flipped
byte in an OCDBT data file restores as a silently different array. `fingerprint(tree)` reduces
every array on the devices that hold it (no gather to one host, so arrays sharded over several
hosts work) to two 32-bit lanes over its 32-bit words x_i (narrower dtypes widened, wider split):

  lane 1: sum_i w_i * x_i mod 2^32 with odd weights w_i. Any change to a single word changes it
          (w_i * d != 0 mod 2^32 for odd w_i and d != 0), whatever the bit.
  lane 2: sum_i mix(x_i ^ w_i) mod 2^32 with murmur3's bijective finalizer, for changes spread
          over several words, which could cancel in a linear sum.

The saved form is JSON: {keypath: "dtype[shape]:<16 hex digits>"}. `json_digest` is the CRC-32
of a JSON-able value (the data iterator's state, which holds the data position; the step's meta).
"""
from __future__ import annotations

import json
import zlib

import jax
import jax.numpy as jnp
import numpy as np

_GOLDEN = 0x9E3779B1   # odd, so (2i + 1) * _GOLDEN is odd for every i


def _words(x: jax.Array) -> jax.Array:
  """The array's bytes as a flat uint32 vector (8-byte values give two words each)."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[x.dtype.itemsize]
  return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32).reshape(-1)


def _mix(x: jax.Array) -> jax.Array:
  x = (x ^ (x >> 16)) * jnp.uint32(0x85EBCA6B)
  x = (x ^ (x >> 13)) * jnp.uint32(0xC2B2AE35)
  return x ^ (x >> 16)


def _lanes(x: jax.Array) -> jax.Array:
  words = _words(x)
  weights = (2 * jnp.arange(words.size, dtype=jnp.uint32) + 1) * jnp.uint32(_GOLDEN)
  return jnp.stack([jnp.sum(words * weights, dtype=jnp.uint32),
                    jnp.sum(_mix(words ^ weights), dtype=jnp.uint32)])


_all_lanes = jax.jit(lambda leaves: [_lanes(x) for x in leaves])


def fingerprint(tree) -> dict[str, str]:
  """{keypath: "dtype[shape]:hex"} for every array leaf of `tree` (one compiled reduction)."""
  flat = [(jax.tree_util.keystr(p), jnp.asarray(x) if not isinstance(x, jax.Array) else x)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]]
  lanes = jax.device_get(_all_lanes([x for _, x in flat]))
  return {name: f"{x.dtype}{list(x.shape)}:{int(a):08x}{int(b):08x}"
          for (name, x), (a, b) in zip(flat, np.asarray(lanes).reshape(-1, 2))}


def mismatches(saved: dict[str, str], got: dict[str, str]) -> list[str]:
  """Key paths whose saved fingerprint differs from (or is missing in) `got`."""
  return [name for name, want in saved.items() if got.get(name) != want]


def json_digest(value) -> str:
  """CRC-32 of a JSON-able value, independent of key order."""
  return f"{zlib.crc32(json.dumps(value, sort_keys=True, default=str).encode()):08x}"
