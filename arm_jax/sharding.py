"""Meshes and logical-axis sharding: parallelism is a config edit, never a code edit.

Model code names logical axes only (`batch`, `embed`, `mlp`, `heads`, ...). `config.mesh.rules`
maps each to mesh axes (`data`, `fsdp`, `tensor`). Parameters carry their logical names as NNX
sharding metadata; activations are constrained with `constrain(x, names)`.
"""
from __future__ import annotations

import contextlib
import math
from typing import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from arm_jax.config import ConfigError

LogicalNames = Sequence[str | None]

# Parameters are created abstractly and materialised by a jit with out_shardings (big_vision
# style), so the eager per-Variable sharding of newer flax versions must stay off: it would need
# a mesh at construction and would shard twice.
nnx.use_eager_sharding(False)


def mesh_shape(axes: Sequence[str], shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
  """Resolves the single -1 in `shape` to the devices left over; checks the product.

  A shape without -1 may use fewer devices than present (the first ones): (1, 1, 1) is
  "one device" whatever the host has.
  """
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if num_devices % known:
      raise ConfigError(f"mesh.shape {tuple(shape)} does not divide {num_devices} devices; "
                        f"make the fixed axes' product a divisor of {num_devices}")
    shape = tuple(num_devices // known if s == -1 else s for s in shape)
  if math.prod(shape) > num_devices:
    raise ConfigError(f"mesh.shape {tuple(shape)} over axes {tuple(axes)} needs "
                      f"{math.prod(shape)} devices but {num_devices} are present; use -1 for "
                      f"one axis to take the rest")
  return tuple(shape)


def make_mesh(mesh_cfg, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Mesh from `config.mesh` over `devices` (default: all), GSPMD-style auto axes."""
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(mesh_cfg.axes, mesh_cfg.shape, len(devices))
  auto = (jax.sharding.AxisType.Auto,) * len(shape)
  return jax.make_mesh(shape, tuple(mesh_cfg.axes), axis_types=auto,
                       devices=devices[:math.prod(shape)])


def rules_of(mesh_cfg) -> tuple[tuple[str, object], ...]:
  return tuple((name, tuple(ax) if isinstance(ax, list) else ax) for name, ax in mesh_cfg.rules)


def logical_to_spec(names: LogicalNames, rules) -> PartitionSpec:
  """('batch', 'length', 'embed') -> PartitionSpec(('data','fsdp'), None, 'fsdp')."""
  table = dict(rules)
  out, used = [], set()
  for name in names:
    if name is not None and name not in table:
      raise ConfigError(f"logical axis '{name}' has no entry in mesh.rules; add "
                        f"('{name}', MESH_AXIS or None)")
    axes = table.get(name) if name is not None else None
    axes = () if axes is None else ((axes,) if isinstance(axes, str) else tuple(axes))
    # A mesh axis may shard only one dimension: the first dimension that asks gets it.
    axes = tuple(a for a in axes if a not in used)
    used.update(axes)
    out.append(None if not axes else (axes[0] if len(axes) == 1 else axes))
  return PartitionSpec(*out)


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules):
  """Makes `mesh` and the logical rules current (for `constrain` and param specs)."""
  with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
    yield mesh


def _current_rules():
  from flax.core import spmd
  return spmd.get_logical_axis_rules()


def constrain(x: jax.Array, names: LogicalNames) -> jax.Array:
  """with_sharding_constraint by logical names; a no-op outside `use_mesh` (single device)."""
  mesh = jax.sharding.get_abstract_mesh()
  rules = _current_rules()
  if mesh.empty or not rules:
    return x
  return jax.lax.with_sharding_constraint(x, _fit(logical_to_spec(names, rules), x.shape, mesh))


def current_spec(names: LogicalNames, shape: Sequence[int]) -> PartitionSpec | None:
  """The PartitionSpec `constrain` would use for an array of `shape` (shard_map specs);
  None outside `use_mesh`."""
  mesh = jax.sharding.get_abstract_mesh()
  rules = _current_rules()
  if mesh.empty or not rules:
    return None
  return _fit(logical_to_spec(names, rules), shape, mesh)


def _fit(spec: PartitionSpec, shape: Sequence[int], mesh) -> PartitionSpec:
  """Drops mesh axes that do not divide a dimension (tiny toy dims on big meshes)."""
  sizes = dict(zip(mesh.axis_names, mesh.axis_sizes))
  out = []
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    if axes is None:
      out.append(None)
      continue
    axes_t = (axes,) if isinstance(axes, str) else tuple(axes)
    kept = []
    for ax in axes_t:
      if dim % (math.prod(sizes[a] for a in kept) * sizes[ax]) == 0:
        kept.append(ax)
    out.append(None if not kept else (kept[0] if len(kept) == 1 else tuple(kept)))
  return PartitionSpec(*out)


def state_shardings(abstract_state, mesh: Mesh, rules):
  """NamedShardings for an (abstract) nnx.State whose Variables carry logical sharding names."""
  with nnx.logical_axis_rules(rules):
    specs = nnx.get_partition_spec(abstract_state)
  return jax.tree.map(lambda spec, x: NamedSharding(mesh, _fit(spec, x.shape, mesh)),
                      specs, abstract_state, is_leaf=lambda s: isinstance(s, PartitionSpec))


def batch_sharding(mesh: Mesh, rules, ndim: int = 2) -> NamedSharding:
  """Sharding of a [batch, ...] input array: batch over the data axes, the rest replicated."""
  return NamedSharding(mesh, logical_to_spec(("batch",) + (None,) * (ndim - 1), rules))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def global_batch(batch: dict[str, np.ndarray], mesh: Mesh, rules) -> dict[str, jax.Array]:
  """This process's rows of a batch -> global jax.Arrays sharded over the batch axes."""
  out = {}
  for key, value in batch.items():
    sharding = batch_sharding(mesh, rules, value.ndim)
    if jax.process_count() == 1:
      out[key] = jax.device_put(value, sharding)
    else:
      out[key] = jax.make_array_from_process_local_data(sharding, value)
  return out
