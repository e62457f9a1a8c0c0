"""Train state: a plain dict {params, opt_state, step, rng}, created sharded from its shapes.

Shapes come from `eval_shape`, shardings from the parameters' logical names and the mesh rules,
and a jit with those `out_shardings` materialises the state directly on its devices (big_vision
style), so no host ever holds the whole model.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from arm_jax import sharding as shd

ModelFn = Callable[[nnx.Rngs], nnx.Module]


@dataclasses.dataclass(frozen=True)
class StateSpec:
  """The static half of a train state: how to rebuild the model and where each array lives."""
  graphdef: Any
  abstract: Any        # pytree of ShapeDtypeStruct, same structure as the state
  shardings: Any       # pytree of NamedSharding, same structure as the state
  mesh: Mesh

  def model(self, params) -> nnx.Module:
    return nnx.merge(self.graphdef, params)


def param_shardings(model_fn: ModelFn, mesh: Mesh, rules):
  """(graphdef, abstract params as a pure dict, NamedShardings as a pure dict)."""
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: model_fn(nnx.Rngs(0))))
  shardings = shd.state_shardings(abstract, mesh, rules)
  return graphdef, nnx.to_pure_dict(abstract), nnx.to_pure_dict(shardings)


def _with_sharding(abstract, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      abstract, shardings)


def state_spec(model_fn: ModelFn, tx: optax.GradientTransformation, mesh: Mesh, rules,
               seed: int) -> tuple[Callable, StateSpec]:
  """(init(key, params=None) -> state, StateSpec) without allocating any array.

  What `create_state` materialises, and what AOT compilation lowers against (the abstract
  state carries the shardings, so `jit(...).lower(spec.abstract, ...)` needs no devices).
  """
  graphdef, _, p_sh = param_shardings(model_fn, mesh, rules)
  rep = NamedSharding(mesh, PartitionSpec())

  def init(key, p=None):
    if p is None:
      p = nnx.to_pure_dict(nnx.split(model_fn(nnx.Rngs(key)))[1])
    return {"params": p, "opt_state": tx.init(p), "step": jnp.zeros((), jnp.int32),
            "rng": jax.random.key_data(jax.random.key(seed))}

  abstract = jax.eval_shape(init, jax.random.key(seed))
  opt_sh = optax.tree_map_params(tx, lambda _, s: s, abstract["opt_state"], p_sh,
                                 transform_non_params=lambda _: rep)
  shardings = {"params": p_sh, "opt_state": opt_sh, "step": rep, "rng": rep}
  return init, StateSpec(graphdef, _with_sharding(abstract, shardings), shardings, mesh)


def create_state(model_fn: ModelFn, tx: optax.GradientTransformation, mesh: Mesh, rules,
                 seed: int, params=None) -> tuple[dict, StateSpec]:
  """Fresh (or `params`-initialised) train state on the mesh, and its StateSpec."""
  init, spec = state_spec(model_fn, tx, mesh, rules, seed)
  key = jax.random.key(seed)
  if params is None:
    state = jax.jit(init, out_shardings=spec.shardings)(key)
  else:
    # Given weights (an import) are placed shard by shard, never embedded as constants.
    p_sh = spec.shardings["params"]
    params = jax.device_put(params, p_sh)
    rep = NamedSharding(mesh, PartitionSpec())
    state = jax.jit(init, in_shardings=(rep, p_sh), out_shardings=spec.shardings)(key, params)
  return state, spec
