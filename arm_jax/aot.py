"""`arm-jax aot`: compile the recipe's step functions for a TPU slice on any host, before paying
for one. MaxText's train_compile habit:

    arm-jax aot --config configs/arm_7b.py --topology v5p-64
    arm-jax aot --config configs/arm_7b.py --topology v6e:8x8 --config.train.grad_accum=4
    arm-jax aot --config configs/gpu_h100.py --topology h100-8    # GPUs: analytic estimate only

libtpu (`jax[tpu]`, requirements-tpu.txt) describes any TPU topology
(`jax.experimental.topologies.get_topology_desc`); the config's mesh is laid over those devices
and the trainer's own state shardings (`state_spec`) and train step (`make_train_step`) are
lowered with ShapeDtypeStruct inputs and compiled by the TPU compiler: no array is allocated.
Likewise the GRPO update step (the same train step with grpo_loss) and the sampler's prefill and
decode loop (arm_jax/decode/compiled.py's jits, largest batch bucket, a full image with
guidance); `--steps` picks which.
The report: per-chip memory of each compiled executable against HBM, the step's FLOPs counted
analytically (XLA's cost_analysis counts a scanned layer body once), and the step time, tokens/s
and MFU that follow from the chips' published bf16 peak at an assumed MFU (`--mfu`), next to
the FSDP traffic that has to hide under that compute. A GPU topology cannot be compiled without
a GPU, so for one the memory is arm_jax/train/memory.py's analytic estimate, and it says so.
A step that does not fit stops with one line: by how much, and what to change.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
import time

import jax
import jax.numpy as jnp

from arm_jax import sharding as shd
from arm_jax import topology as topo_lib
from arm_jax.errors import UserError
from arm_jax.model.transformer import ModelConfig
from arm_jax.train import flops as flops_lib
from arm_jax.train import memory as memory_lib

GIB = 1024**3


class DoesNotFitError(UserError):
  """The step needs more memory per chip than the chip has."""


class NoTpuCompilerError(UserError):
  """jax[tpu] (libtpu) is not installed, so TPU topologies cannot be described here."""


def tpu_compiler_missing() -> str | None:
  """Why TPU AOT compilation cannot run here, or None when it can."""
  if importlib.util.find_spec("libtpu") is None:
    return ("libtpu is not installed; pip install -r requirements-tpu.txt (jax[tpu] at the "
            "pinned jax version) to compile for TPU topologies on this host")
  return None


def topology_devices(topo: topo_lib.Topology) -> list:
  """The TPU devices of `topo`, described by libtpu (no TPU needed)."""
  missing = tpu_compiler_missing()
  if missing:
    raise NoTpuCompilerError(missing)
  from arm_jax.distributed import tpu_chips_on_pci
  if not tpu_chips_on_pci():
    # No chip to guard here: libtpu's one-process lock would only stop two compiles at once.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  from jax.experimental import topologies
  return list(topologies.get_topology_desc(
      platform="tpu", topology_name=topo.topology_name,
      chip_config_name=topo.chip.chip_config_name).devices)


# ---------------------------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CompiledStep:
  """One compiled step function: per-device memory (bytes) from XLA, and compile time."""
  name: str
  arguments: int
  outputs: int
  aliased: int       # outputs written into donated arguments (not counted twice)
  temporaries: int
  code: int
  seconds: float
  xla_flops: float   # cost_analysis, per device; counts the scanned layer body once

  @property
  def total(self) -> int:
    return self.arguments + self.outputs - self.aliased + self.temporaries + self.code

  @staticmethod
  def of(name: str, compiled, seconds: float) -> "CompiledStep":
    m = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return CompiledStep(name, m.argument_size_in_bytes, m.output_size_in_bytes,
                        m.alias_size_in_bytes, m.temp_size_in_bytes,
                        m.generated_code_size_in_bytes, seconds,
                        float((cost or {}).get("flops", 0.0)))


_OOM = re.compile(r"\(([\d.]+)([KMGT])\) exceeds available HBM \(([\d.]+)([KMGT])\)")


def _compile(name: str, lowered_fn, topo, advice: str, keep: bool = False):
  """Lowers and compiles -> CompiledStep (and the executable, with `keep`); the TPU compiler's
  own out-of-memory error becomes a one-liner."""
  t0 = time.perf_counter()
  try:
    compiled = lowered_fn().compile()
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    m = _OOM.search(str(e))
    if not m:
      raise DoesNotFitError(f"the {name} step does not fit in {topo.name}'s HBM (compiler: "
                            f"{str(e).splitlines()[0][:160]}); try {advice}") from None
    unit = {"K": 2**-20, "M": 2**-10, "G": 1, "T": 2**10}
    need, have = float(m[1]) * unit[m[2]], float(m[3]) * unit[m[4]]
    raise DoesNotFitError(
        f"the {name} step does not fit on {topo.name}: its temporaries alone need "
        f"{need:.1f} GiB per chip, {have:.1f} GiB of HBM is available (over by "
        f"{need - have:.1f} GiB); try {advice}") from None
  step = CompiledStep.of(name, compiled, time.perf_counter() - t0)
  return (step, compiled) if keep else step


def pretrain_batch(config) -> dict:
  """The pretraining batch as ShapeDtypeStructs: inputs/targets int32, loss_mask f32."""
  shape = (config.train.batch_size, config.train.seq_len)
  return {"inputs": jax.ShapeDtypeStruct(shape, jnp.int32),
          "targets": jax.ShapeDtypeStruct(shape, jnp.int32),
          "loss_mask": jax.ShapeDtypeStruct(shape, jnp.float32)}


def compile_pretrain(config, mesh, topo, advice: str) -> CompiledStep:
  """The trainer's pretraining step (same state shardings, same jit), compiled for `mesh`."""
  from arm_jax.train.optimizer import learning_rate_schedule, make_optimizer
  from arm_jax.train.pretrain import pretrain_stage
  from arm_jax.train.state import state_spec
  from arm_jax.train.step import make_train_step
  rules = shd.rules_of(config.mesh)
  stage = pretrain_stage(config)
  tx = make_optimizer(config.train)
  _, spec = state_spec(stage.model_fn, tx, mesh, rules, config.train.seed)
  batch = pretrain_batch(config)
  step = make_train_step(spec, tx, stage.loss_fn, rules, grad_accum=config.train.grad_accum,
                         schedule=learning_rate_schedule(config.train), batch_example=batch)

  def lower():
    with shd.use_mesh(mesh, rules):
      return step.jitted.lower(spec.abstract, batch)
  return _compile("pretrain", lower, topo, advice)


def rl_batch(config) -> dict:
  """A GRPO update batch (arm_jax/rl/grpo.py's grpo_loss) as ShapeDtypeStructs: prompts_per_step x
  group_size rollouts, padded to model.max_seq_len (the bound on prompt + image)."""
  rows, length = config.rl.prompts_per_step * config.rl.group_size, config.model.max_seq_len
  sds = jax.ShapeDtypeStruct
  return {"tokens": sds((rows, length), jnp.int32), "valid": sds((rows, length), jnp.bool_),
          **{k: sds((rows, length - 1), jnp.float32) for k in ("loss_mask", "old_logp",
                                                               "ref_logp", "advantages")},
          "temperature": sds((rows,), jnp.float32)}


def compile_rl(config, mesh, topo, advice: str) -> CompiledStep:
  """The GRPO update step: the shared train step with grpo_loss, RL's optimizer settings."""
  from arm_jax.rl import grpo
  from arm_jax.rl.loop import rl_hparams
  from arm_jax.train.optimizer import learning_rate_schedule, make_optimizer
  from arm_jax.train.pretrain import decoder_fn
  from arm_jax.train.state import state_spec
  from arm_jax.train.step import make_train_step
  rules = shd.rules_of(config.mesh)
  tcfg = rl_hparams(config)
  tx = make_optimizer(tcfg)
  _, spec = state_spec(decoder_fn(config), tx, mesh, rules, config.train.seed)
  cfg, vocab = grpo.GRPOConfig.from_config(config.rl), ModelConfig.from_config(config.model).vocab
  loss_fn = lambda model, batch, rng: grpo.grpo_loss(model, batch, rng, cfg=cfg, vocab=vocab)
  batch = rl_batch(config)
  step = make_train_step(spec, tx, loss_fn, rules, grad_accum=tcfg.grad_accum,
                         schedule=learning_rate_schedule(tcfg), batch_example=batch)

  def lower():
    with shd.use_mesh(mesh, rules):
      return step.jitted.lower(spec.abstract, batch)
  return _compile("rl", lower, topo, advice)


def compile_decode(config, mesh, topo, advice: str) -> list[CompiledStep]:
  """The sampler's prefill and decode loop (arm_jax/decode/compiled.py's jits) for the largest
  batch bucket of T2I with guidance: a full image of data.image_size / tokenizer.patch_size
  codes after the longest prompt bucket."""
  from arm_jax.decode import compiled as dec
  from arm_jax.decode import constraints as cons
  from arm_jax.decode import sampler
  from arm_jax.train.pretrain import decoder_fn
  from arm_jax.train.state import param_shardings
  rules = shd.rules_of(config.mesh)
  d = config.decode
  batch, grid = max(d.batch_buckets), config.data.image_size // config.tokenizer.patch_size
  max_new = grid * grid + 4                       # <boi> <h> <w> codes <eoi>
  p_len = dec.length_buckets(d.length_buckets, config.model.max_seq_len, max_new)[-1]
  rows = 2 * batch                                # guidance "t2i": conditional + unconditional
  graphdef, abstract, p_sh = param_shardings(decoder_fn(config), mesh, rules)
  params = jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
                        abstract, p_sh)

  def placed(shape, dtype):   # as CompiledSampler._place: batch-sharded when the axes divide it
    sharding = shd.batch_sharding(mesh, rules, len(shape))
    if shape[0] % math.prod(mesh.shape[a] for a in jax.tree.leaves(sharding.spec[0])):
      sharding = shd.replicated(mesh)
    return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
  i32, f32 = jnp.int32, jnp.float32
  constraint = cons.Constraint(*(placed((batch,), dt) for dt in (i32,) * 6 + (jnp.bool_,) * 2))
  kn = sampler.Knobs(placed((batch,), f32), placed((batch,), i32), placed((batch,), f32),
                     jax.ShapeDtypeStruct((2,), f32, sharding=shd.replicated(mesh)))
  key_data = placed((batch,) + jax.random.key_data(jax.random.key(0)).shape, jnp.uint32)
  common = dict(graphdef=graphdef, guidance="t2i")
  with shd.use_mesh(mesh, rules):
    lowered = dec._prefill.lower(params, placed((rows, p_len), i32),
                                 placed((rows, p_len), jnp.bool_), key_data, constraint, kn,
                                 max_new=max_new, cache_len=p_len + max_new,
                                 cache_dtype=jnp.dtype(d.cache_dtype), **common)
    prefill, compiled = _compile("prefill", lambda: lowered, topo, advice, keep=True)
    # The decode loop takes the prefill's output (the KV cache first) where prefill left it.
    state = jax.tree.map(lambda o, sh: jax.ShapeDtypeStruct(o.shape, o.dtype, sharding=sh),
                         lowered.out_info, compiled.output_shardings)
    decode = _compile("decode", lambda: dec._decode.lower(params, state, kn, **common), topo,
                      advice)
  return [prefill, decode]


# ---------------------------------------------------------------------------------------------
# Advice and the report
# ---------------------------------------------------------------------------------------------

def advice(config, devices: int, step: str = "pretrain") -> str:
  """What to change when `step` (pretrain | rl | decode) does not fit, most effective first."""
  if step == "decode":
    return (f"smaller decode.batch_buckets (largest now {max(config.decode.batch_buckets)}), "
            f"or a larger slice")
  section, rows = ("rl", config.rl.prompts_per_step * config.rl.group_size) if step == "rl" \
      else ("train", config.train.batch_size)
  accum = config[section].grad_accum
  tips = []
  per_device = rows / accum / devices
  if per_device > 1 and rows % (2 * accum) == 0:
    tips.append(f"a smaller per-chip batch: --config.{section}.grad_accum={2 * accum} "
                f"({per_device / 2:g} sequences per chip per micro-batch)")
  if config.model.remat != "full":
    tips.append("--config.model.remat=full")
  sizes = dict(zip(config.mesh.axes, shd.mesh_shape(config.mesh.axes, config.mesh.shape,
                                                    devices)))
  if sizes.get("fsdp", 1) < devices:
    tips.append(f"more fsdp: --config.mesh.shape=(1,-1,1) (FSDP over all {devices} chips)")
  tips.append("a larger slice")
  return ", or ".join(tips)


@dataclasses.dataclass(frozen=True)
class Prediction:
  """Step time from FLOPs and the published peak; FSDP traffic from published links."""
  flops: float            # model FLOPs per step, whole slice
  seconds_at_peak: float  # compute-bound floor (100% MFU)
  mfu: float              # assumed
  seconds: float          # predicted step time at `mfu`
  tokens_per_s: float
  comm_seconds: float     # FSDP + data-parallel collectives per step at published link rates


def predict(config, topo: topo_lib.Topology, n_params: int, mfu: float) -> Prediction:
  t = config.train
  flops = flops_lib.pretrain_step_flops(config)
  floor = flops / topo.peak_flops
  sizes = dict(zip(config.mesh.axes, shd.mesh_shape(config.mesh.axes, config.mesh.shape,
                                                    topo.chips)))
  data, fsdp, tensor = sizes.get("data", 1), sizes.get("fsdp", 1), sizes.get("tensor", 1)
  # On GPUs a group larger than a host crosses the host network, and the data axis (outermost)
  # does as soon as fsdp x tensor fills a host; a TPU slice is all ICI.
  gpu = topo.chip.platform == "gpu"
  inner_gbps = topo.chip.dcn_gbps if gpu and fsdp * tensor > topo.chips_per_host \
      else topo.chip.ici_gbps
  outer_gbps = topo.chip.dcn_gbps if gpu and data > 1 else topo.chip.ici_gbps
  comm = (flops_lib.link_seconds(flops_lib.fsdp_bytes_per_chip(config, n_params, fsdp, tensor),
                                 inner_gbps) +
          flops_lib.link_seconds(flops_lib.data_parallel_bytes_per_chip(n_params, data, fsdp,
                                                                        tensor), outer_gbps))
  return Prediction(flops, floor, mfu, floor / mfu, t.batch_size * t.seq_len / (floor / mfu),
                    comm)


def _gib(x: float) -> str:
  return f"{x / GIB:.2f} GiB"


def _time(seconds: float) -> str:
  return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1e3:.3g} ms"


def _count(n: int) -> str:
  return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def report_lines(config, topo, steps: list[CompiledStep], estimate, pred: Prediction,
                 n_params: int) -> list[str]:
  hbm = topo.hbm_bytes_per_chip
  lines = [f"{config.name} on {topo.name} ({topo.chips} x {topo.chip.generation}, "
           f"{topo.chip.hbm_gib:g} GiB HBM and {topo.peak_flops_per_chip / 1e12:.0f} TFLOP/s "
           f"bf16 per chip, published); {_count(n_params)} parameters",
           f"mesh {dict(zip(config.mesh.axes, shd.mesh_shape(config.mesh.axes, config.mesh.shape, topo.chips)))}, "
           f"batch {config.train.batch_size} x {config.train.seq_len} tokens, grad_accum "
           f"{config.train.grad_accum}, remat {config.model.remat}, attention "
           f"{config.model.attention}"]
  for s in steps:
    lines += [f"[{s.name}] compiled for {topo.topology_name} in {s.seconds:.0f} s; per chip: "
              f"arguments {_gib(s.arguments)}, outputs {_gib(s.outputs)} ({_gib(s.aliased)} "
              f"aliased to donated arguments), temporaries {_gib(s.temporaries)}, generated "
              f"code {_gib(s.code)}",
              f"[{s.name}] memory per chip {_gib(s.total)} of {_gib(hbm)} HBM "
              f"({100 * s.total / hbm:.0f}%): fits"]
  if estimate is not None:
    lines.append(f"[pretrain] analytic memory estimate per chip (arm_jax/train/memory.py"
                 f"{'' if steps else '; GPUs cannot be compiled on this host'}):")
    lines += estimate.lines()
  lines += [f"[pretrain] FLOPs per step (analytic, 6N + attention): {pred.flops:.3e} "
            f"({pred.flops / topo.chips:.3e} per chip)"]
  for s in steps:
    if s.name == "pretrain" and s.xla_flops:
      lines.append(f"[pretrain] XLA cost_analysis: {s.xla_flops:.3e} per chip (counts the "
                   f"scanned layer body once and remat recompute; not used)")
  lines += [f"[pretrain] step time >= {_time(pred.seconds_at_peak)} at the published peak; "
            f"predicted {_time(pred.seconds)} at an assumed {100 * pred.mfu:.0f}% MFU "
            f"({pred.tokens_per_s:,.0f} tokens/s, "
            f"{pred.tokens_per_s / topo.chips:,.0f} per chip)",
            f"[pretrain] collectives (FSDP gathers, gradient reductions): "
            f"{_time(pred.comm_seconds)} per step at half the "
            f"published link bandwidth ({pred.comm_seconds / pred.seconds:.2f} of the predicted "
            f"step; hidden under compute when < 1)"]
  return lines


STEPS = ("pretrain", "rl", "decode")


def compile_steps(config, topo, names=STEPS) -> tuple[list[CompiledStep], list[str]]:
  """Compiles the named steps for TPU slice `topo` -> (compiled steps, notes on steps whose
  code is not in this checkout). Raises DoesNotFitError for the first step that does not fit."""
  mesh = shd.make_mesh(config.mesh, topology_devices(topo))
  builders = {"pretrain": lambda tip: [compile_pretrain(config, mesh, topo, tip)],
              "rl": lambda tip: [compile_rl(config, mesh, topo, tip)],
              "decode": lambda tip: compile_decode(config, mesh, topo, tip)}
  steps, notes = [], []
  for name in names:
    missing = _missing_code(name)
    if missing:
      notes.append(f"[{name}] not compiled: {missing} is not in this checkout")
      continue
    compiled = builders[name](advice(config, topo.chips, name))
    for step in compiled:
      _check_fits(config, topo, step.name, step.total, "compiled", advice(config, topo.chips,
                                                                           name))
    steps += compiled
  return steps, notes


# What each step's builder uses from the stages that define it.
_NEEDS = {"pretrain": {"arm_jax.train.pretrain": ("pretrain_stage",)},
          "rl": {"arm_jax.rl.grpo": ("grpo_loss", "GRPOConfig"), "arm_jax.rl.loop": ("rl_hparams",)},
          "decode": {"arm_jax.decode.compiled": ("_prefill", "_decode", "length_buckets"),
                     "arm_jax.decode.sampler": ("Knobs",),
                     "arm_jax.decode.constraints": ("Constraint",)}}


def _missing_code(step: str) -> str | None:
  for module, names in _NEEDS[step].items():
    if importlib.util.find_spec(module) is None:
      return module
    loaded = importlib.import_module(module)
    for name in names:
      if not hasattr(loaded, name):
        return f"{module}.{name}"
  return None


def _check_fits(config, topo, name: str, need: float, how: str, tip: str) -> None:
  hbm = topo.hbm_bytes_per_chip
  if need > hbm:
    raise DoesNotFitError(f"the {name} step of {config.name} does not fit on {topo.name}: "
                          f"{how} {need / GIB:.1f} GiB per chip, {topo.chip.hbm_gib:g} GiB of "
                          f"HBM (over by {(need - hbm) / GIB:.1f} GiB); try {tip}")


def aot_report(config, topology_name: str, mfu: float = 0.5, steps=STEPS) -> dict:
  """Compiles (TPU) or estimates (GPU) `config`'s steps for a slice; raises DoesNotFitError.

  Returns {lines, steps: [CompiledStep], estimate: MemoryEstimate, prediction: Prediction}.
  """
  topo = topo_lib.parse(topology_name)
  if not 0 < mfu <= 1:
    raise UserError(f"--mfu {mfu} must be a fraction in (0, 1], e.g. 0.5")
  unknown = set(steps) - set(STEPS)
  if unknown:
    raise UserError(f"--steps: unknown {', '.join(sorted(unknown))}; choose from "
                    f"{','.join(STEPS)}")
  estimate = memory_lib.estimate(config, topo.chips)
  compiled, notes = [], []
  if topo.chip.platform == "tpu":
    compiled, notes = compile_steps(config, topo, steps)
  else:
    _check_fits(config, topo, "pretrain", estimate.total, "estimated (analytic)",
                advice(config, topo.chips))
  n_params = sum(x.size for x in jax.tree.leaves(_abstract_params(config)))
  pred = predict(config, topo, n_params, mfu)
  lines = report_lines(config, topo, compiled, estimate, pred, n_params) + notes
  return dict(lines=lines, steps=compiled, estimate=estimate, prediction=pred)


def _abstract_params(config):
  from flax import nnx

  from arm_jax.train.pretrain import decoder_fn
  return nnx.state(nnx.eval_shape(lambda: decoder_fn(config)(nnx.Rngs(0))))


def run(config, args) -> int:
  """`arm-jax aot`: compiles on the CPU backend (libtpu only describes the target)."""
  from arm_jax.distributed import tpu_chips_on_pci
  if not tpu_chips_on_pci():
    jax.config.update("jax_platforms", "cpu")
  out = aot_report(config, args.topology, args.mfu, tuple(args.steps.split(",")))
  print("\n".join(out["lines"]), flush=True)
  return 0
