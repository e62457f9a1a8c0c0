"""Accelerator slice names -> what gcloud, jax topologies and the AOT/MFU reports need.

Pure Python (no jax import), so the launch scripts can call it on a laptop:

    python -m arm_jax.topology v5p-64             # one line per field
    python -m arm_jax.topology v5p-64 --field accelerator_type

Two naming conventions meet here. Cloud accelerator types count TensorCores for v4 and v5p
(two per chip: v5p-64 = 32 chips = 2x4x4) and chips for v5e and v6e (v5litepod-16 = v6e-16 =
16 chips = 4x4). JAX topology names count chips per axis: "v5p:2x4x4". Every spelling below
parses to one `Topology`:

    v5p-64, v4-32, v5litepod-16, v5e-16, v6e-16     Cloud names
    v5p:2x4x4, v5e:4x4, v6e:16x16, v5:2x4x4          chip shapes (v5 = v5p, as MaxText spells it)
    h100-16, 16xh100, h200-8                         GPUs (8 per host)

Chip figures are Google's and NVIDIA's published per-chip peaks (dense bf16) and HBM capacity:
cloud.google.com/tpu/docs/{v4,v5p,v5e,v6e}; NVIDIA H100/H200 SXM datasheets (NVLink 900 GB/s) and
the DGX H100 network (one 400 Gb/s NIC per GPU). HBM is the
published capacity; the runtime reserves a little of it (a v5e reports ~15.75 GiB usable).
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys

from arm_jax.errors import UserError

GIB = 1024**3


class TopologyError(UserError, ValueError):
  """An accelerator name that does not parse; the message lists the accepted spellings."""


@dataclasses.dataclass(frozen=True)
class Chip:
  """One accelerator generation: its naming, its size limits and its published figures."""
  generation: str            # canonical short name, also the jax topology prefix: "v5p"
  platform: str              # "tpu" | "gpu"
  cloud_prefix: str          # gcloud accelerator-type prefix: "v5litepod" for v5e
  cores_per_chip: int        # what one unit of the Cloud name counts per chip (v4/v5p: 2 cores)
  dims: int                  # torus dimensions: 3 (v4, v5p), 2 (v5e, v6e); GPUs: (hosts, gpus)
  chip_counts: tuple[int, ...]  # slice sizes in chips that have a standard shape
  hbm_gib: float             # HBM per chip, published
  peak_bf16_flops: float     # dense bf16 FLOP/s per chip, published
  runtime_version: str = ""  # default TPU software version for `gcloud ... --version`
  # get_topology_desc(chip_config_name=...): v4/v5p chips are one "megacore" device each; without
  # it libtpu makes v4 one device per TensorCore (2x the devices, half the HBM each).
  chip_config_name: str = "default"
  measured_bf16_flops: float | None = None  # bf16 matmul peak we measured (8192^3), if any
  # Published interconnect bandwidth per chip, Gbit/s, both directions summed: TPU ICI, GPU
  # NVLink (within a slice / a host); `dcn_gbps` between GPU hosts (one 400G NIC per GPU).
  ici_gbps: float = 0.0
  dcn_gbps: float = 0.0


_POW2 = tuple(2**i for i in range(15))

CHIPS: dict[str, Chip] = {
    "v4": Chip("v4", "tpu", "v4", 2, 3, tuple(c for c in _POW2 if 4 <= c <= 4096),
               hbm_gib=32, peak_bf16_flops=275e12, runtime_version="tpu-ubuntu2204-base",
               chip_config_name="megacore", ici_gbps=2400),
    # The largest single v5p slice is 16x16x24 (6144 chips); powers of two up to 4096 are cubes.
    "v5p": Chip("v5p", "tpu", "v5p", 2, 3, tuple(c for c in _POW2 if 4 <= c <= 4096),
                hbm_gib=95, peak_bf16_flops=459e12, runtime_version="v2-alpha-tpuv5",
                chip_config_name="megacore", ici_gbps=4800),
    "v5e": Chip("v5e", "tpu", "v5litepod", 1, 2, (1, 4, 8, 16, 32, 64, 128, 256),
                hbm_gib=16, peak_bf16_flops=197e12, runtime_version="v2-alpha-tpuv5-lite",
                ici_gbps=1600),
    "v6e": Chip("v6e", "tpu", "v6e", 1, 2, (1, 4, 8, 16, 32, 64, 128, 256),
                hbm_gib=32, peak_bf16_flops=918e12, runtime_version="v2-alpha-tpuv6e",
                ici_gbps=3584),
    # Published dense bf16 peak 989 TFLOP/s (1979 is with 2:4 sparsity); measured: an 8192^3 bf16
    # matmul reaches ~790 TFLOP/s on both, the denominator our GPU MFU figures use.
    "h100": Chip("h100", "gpu", "", 1, 2, (), hbm_gib=80, peak_bf16_flops=989e12,
                 measured_bf16_flops=790e12, ici_gbps=7200, dcn_gbps=400),
    "h200": Chip("h200", "gpu", "", 1, 2, (), hbm_gib=141, peak_bf16_flops=989e12,
                 measured_bf16_flops=790e12, ici_gbps=7200, dcn_gbps=400),
}

_ALIASES = {"v5": "v5p", "v5litepod": "v5e", "v5lite": "v5e", "trillium": "v6e"}
GPUS_PER_HOST = 8
TPU_VM_CHIPS = 4  # chips per TPU VM (= per JAX process) in multi-host slices of every generation


@dataclasses.dataclass(frozen=True)
class Topology:
  """A slice: a chip generation and its chip grid (GPUs: hosts x GPUs per host)."""
  chip: Chip
  shape: tuple[int, ...]

  @property
  def chips(self) -> int:
    n = 1
    for d in self.shape:
      n *= d
    return n

  @property
  def chips_per_host(self) -> int:
    """Chips one host (one JAX process) drives. Multi-host v5e/v6e slices use 4-chip VMs
    (ct5lp-hightpu-4t, ct6e-standard-4t), as v4/v5p always do; an 8-chip v5e/v6e is one VM."""
    if self.chip.platform == "gpu":
      return self.shape[1]
    if self.chip.dims == 2 and self.chips <= 8:
      return self.chips
    return min(self.chips, TPU_VM_CHIPS)

  @property
  def hosts(self) -> int:
    return self.chips // self.chips_per_host

  @property
  def accelerator_type(self) -> str:
    """gcloud --accelerator-type: v5p-64 (TensorCores), v5litepod-16 / v6e-16 (chips)."""
    if self.chip.platform != "tpu":
      return ""
    return f"{self.chip.cloud_prefix}-{self.chips * self.chip.cores_per_chip}"

  @property
  def topology_name(self) -> str:
    """get_topology_desc(platform="tpu", topology_name=..., chip_config_name=
    chip.chip_config_name): "v5p:2x4x4"; checked against libtpu for v4, v5p, v5e and v6e."""
    if self.chip.platform != "tpu":
      return ""
    return f"{self.chip.generation}:{'x'.join(map(str, self.shape))}"

  @property
  def name(self) -> str:
    """The canonical spelling: the Cloud name for TPUs, "h100-16" for GPUs."""
    return self.accelerator_type or f"{self.chip.generation}-{self.chips}"

  @property
  def hbm_bytes_per_chip(self) -> int:
    return int(self.chip.hbm_gib * GIB)

  @property
  def peak_flops_per_chip(self) -> float:
    return self.chip.peak_bf16_flops

  @property
  def peak_flops(self) -> float:
    """Published dense bf16 peak of the whole slice, FLOP/s."""
    return self.chips * self.chip.peak_bf16_flops

  def summary(self) -> dict:
    return dict(name=self.name, platform=self.chip.platform, generation=self.chip.generation,
                accelerator_type=self.accelerator_type, topology=self.topology_name,
                chip_config_name=self.chip.chip_config_name if self.topology_name else "",
                shape="x".join(map(str, self.shape)), chips=self.chips, hosts=self.hosts,
                chips_per_host=self.chips_per_host, hbm_gib_per_chip=self.chip.hbm_gib,
                peak_bf16_tflops_per_chip=self.chip.peak_bf16_flops / 1e12,
                measured_bf16_tflops_per_chip=(self.chip.measured_bf16_flops or 0) / 1e12,
                runtime_version=self.chip.runtime_version)


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

_HELP = ("use a Cloud name (v5p-64, v4-32, v5litepod-16, v6e-16), a chip shape (v5p:2x4x4, "
         "v6e:4x4) or GPUs (h100-16, 16xh100)")


def standard_shape(chip: Chip, chips: int) -> tuple[int, ...]:
  """The slice shape Cloud gives `chips` chips: keep doubling the last of the smallest axes.

  3D: 4 -> 2x2x1, 8 -> 2x2x2, 16 -> 2x2x4, 32 -> 2x4x4, 64 -> 4x4x4, ... (the v4/v5p tables);
  2D: 1 -> 1x1, 4 -> 2x2, 8 -> 2x4, 16 -> 4x4, ..., 256 -> 16x16 (the v5e/v6e tables).
  """
  if chips not in chip.chip_counts:
    sizes = ", ".join(str(c) for c in chip.chip_counts)
    raise TopologyError(f"{chip.generation} has no standard slice of {chips} chips (standard: "
                        f"{sizes}); give the shape explicitly, e.g. {chip.generation}:"
                        f"{'x'.join(['2'] * chip.dims)}")
  shape = [2, 2, 1] if chip.dims == 3 else [1, 1]
  while _product(shape) < chips:
    smallest = min(shape)
    i = max(j for j, d in enumerate(shape) if d == smallest)
    shape[i] *= 2
  return tuple(shape)


def _product(xs) -> int:
  n = 1
  for x in xs:
    n *= x
  return n


def _chip(generation: str, original: str) -> Chip:
  generation = _ALIASES.get(generation, generation)
  if generation not in CHIPS:
    raise TopologyError(f"unknown accelerator '{original}'; known generations: "
                        f"{', '.join(CHIPS)}; {_HELP}")
  return CHIPS[generation]


def _from_shape(chip: Chip, dims_text: str, original: str) -> Topology:
  shape = tuple(int(d) for d in dims_text.split("x"))
  if chip.platform == "gpu":
    raise TopologyError(f"'{original}': GPUs take a count, not a shape; e.g. h100-16 "
                        f"(2 hosts x {GPUS_PER_HOST})")
  if len(shape) != chip.dims or min(shape) < 1:
    raise TopologyError(f"'{original}': {chip.generation} slices have {chip.dims} axes of at "
                        f"least 1 chip, e.g. {chip.generation}:{'x'.join(['2'] * chip.dims)}")
  return Topology(chip, shape)


def _from_count(chip: Chip, count: int, original: str) -> Topology:
  if chip.platform == "gpu":
    if count < 1 or (count > GPUS_PER_HOST and count % GPUS_PER_HOST):
      raise TopologyError(f"'{original}': GPU counts above {GPUS_PER_HOST} must fill whole "
                          f"hosts of {GPUS_PER_HOST} (e.g. {chip.generation}-16)")
    per_host = min(count, GPUS_PER_HOST)
    return Topology(chip, (count // per_host, per_host))
  if count % chip.cores_per_chip:
    raise TopologyError(f"'{original}': {chip.cloud_prefix}-N counts TensorCores, "
                        f"{chip.cores_per_chip} per chip, so N must be even")
  return Topology(chip, standard_shape(chip, count // chip.cores_per_chip))


def parse(name: str) -> Topology:
  """Any accepted spelling (see the module docstring) -> Topology. Case-insensitive."""
  text = name.strip().lower()
  if m := re.fullmatch(r"([a-z0-9]+?):(\d+(?:x\d+)*)", text):
    return _from_shape(_chip(m[1], name), m[2], name)
  if m := re.fullmatch(r"(\d+)x([a-z]\d+)", text):           # 16xh100
    return _from_count(_chip(m[2], name), int(m[1]), name)
  if m := re.fullmatch(r"([a-z0-9]+?)-(\d+)", text):         # v5p-64, v5litepod-16, h100-8
    return _from_count(_chip(m[1], name), int(m[2]), name)
  if text in CHIPS and CHIPS[text].platform == "gpu":        # "h100" = one host
    return _from_count(CHIPS[text], GPUS_PER_HOST, name)
  raise TopologyError(f"cannot read accelerator '{name}'; {_HELP}")


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m arm_jax.topology",
      description="Print what a TPU/GPU slice name means: gcloud accelerator type, jax "
                  "topology, chips, hosts, HBM and peak bf16 FLOP/s per chip.")
  parser.add_argument("name", help="v5p-64, v5p:2x4x4, v5litepod-16, v6e-16, h100-16, ...")
  parser.add_argument("--field", choices=sorted(Topology(CHIPS["v5p"], (2, 2, 1)).summary()),
                      help="print only this field's value (for shell scripts)")
  args = parser.parse_args(argv)
  try:
    info = parse(args.name).summary()
  except TopologyError as e:
    print(f"topology: error: {e}", file=sys.stderr)
    return 2
  if args.field:
    print(info[args.field])
  else:
    for key, value in info.items():
      print(f"{key}: {value}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
