"""Multi-process JAX from the environment: one call at the top of every entry point.

    from arm_jax import distributed
    distributed.initialize()                       # before any other jax call
    index, count = distributed.process_info()      # this process's data shard

Where the cluster is described, first match wins:
  1. ARM_COORDINATOR=host:port, ARM_NUM_PROCESSES, ARM_PROCESS_ID: any cluster, the ssh launcher,
     and CPU multi-process tests (127.0.0.1:PORT). All three or none.
  2. SLURM (srun, one task per host): SLURM_NTASKS > 1, SLURM_PROCID, and the first host of
     SLURM_STEP_NODELIST / SLURM_JOB_NODELIST / SLURM_NODELIST as coordinator; the port is
     ARM_COORDINATOR_PORT or derived from SLURM_JOB_ID so two jobs on one node do not collide.
  3. A Cloud TPU VM (TPU chips on the PCI bus, or the TPU_WORKER_* variables GKE sets):
     jax.distributed.initialize() with no arguments; jax reads the slice's workers from the TPU
     metadata server.
  4. Nothing: a single process, no initialisation.
ARM_DISTRIBUTED=0 forces a single process (e.g. a one-host debug run inside a SLURM allocation).
"""
from __future__ import annotations

import dataclasses
import glob
import logging
import os
import pathlib
import re
from typing import Mapping

from arm_jax.errors import UserError

_EXPLICIT = ("ARM_COORDINATOR", "ARM_NUM_PROCESSES", "ARM_PROCESS_ID")
_NODELIST = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
_TPU_ENV = ("TPU_WORKER_ID", "TPU_WORKER_HOSTNAMES")
# Google's PCI vendor id and the TPU device ids (v3 .. TPU7x), as jax's own hardware_utils reads
# them: the one signal that is there on every TPU VM and on nothing else.
_GOOGLE_PCI_VENDOR = "0x1ae0"
_TPU_PCI_DEVICES = {"0x0027", "0x0056", "0x005e", "0x0062", "0x0063", "0x006f", "0x0076"}
PCI_ROOT = "/sys/bus/pci/devices"


class DistributedError(UserError, ValueError):
  """The environment describes a cluster incompletely or inconsistently."""


@dataclasses.dataclass(frozen=True)
class Cluster:
  """How this process joins the job. kind: explicit | slurm | tpu | single."""
  kind: str
  coordinator: str | None = None
  num_processes: int = 1
  process_id: int = 0

  @property
  def multi_process(self) -> bool:
    return self.kind == "tpu" or self.num_processes > 1


# ---------------------------------------------------------------------------------------------
# Reading the environment (pure: takes the mapping, so tests need no cluster)
# ---------------------------------------------------------------------------------------------

def _int(env: Mapping[str, str], key: str) -> int:
  try:
    return int(env[key])
  except ValueError:
    raise DistributedError(f"{key}={env[key]!r} is not an integer; set it to a whole number")


def _check_rank(process_id: int, num_processes: int, id_key: str, n_key: str) -> None:
  if num_processes < 1:
    raise DistributedError(f"{n_key}={num_processes} must be at least 1")
  if not 0 <= process_id < num_processes:
    raise DistributedError(f"{id_key}={process_id} must be in [0, {n_key}={num_processes})")


def _check_address(address: str, key: str) -> str:
  host, sep, port = address.rpartition(":")
  if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise DistributedError(f"{key}={address!r} must be HOST:PORT, e.g. 10.0.0.2:8476")
  return address


def _explicit(env: Mapping[str, str]) -> Cluster:
  missing = [k for k in _EXPLICIT if not env.get(k)]
  if missing:
    given = [k for k in _EXPLICIT if env.get(k)]
    raise DistributedError(f"{', '.join(given)} set but {', '.join(missing)} missing; set all "
                           f"of {', '.join(_EXPLICIT)} or none")
  n, pid = _int(env, "ARM_NUM_PROCESSES"), _int(env, "ARM_PROCESS_ID")
  _check_rank(pid, n, "ARM_PROCESS_ID", "ARM_NUM_PROCESSES")
  return Cluster("explicit", _check_address(env["ARM_COORDINATOR"], "ARM_COORDINATOR"), n, pid)


def first_host(nodelist: str) -> str:
  """First host of a SLURM node list: 'gpu[003-004,010],cpu1' -> 'gpu003'.

  Handles several bracket groups ('rack[1-2]-n[01-04]' -> 'rack1-n01') and zero padding.
  """
  head = re.split(r",(?![^\[]*\])", nodelist.strip(), maxsplit=1)[0]
  host = re.sub(r"\[([^\]]*)\]", lambda m: re.split(r"[-,]", m[1])[0], head)
  if not host or "[" in host or "]" in host:
    raise DistributedError(f"cannot read the first host of SLURM node list {nodelist!r}; set "
                           f"ARM_COORDINATOR=HOST:PORT instead")
  return host


def _slurm_port(env: Mapping[str, str]) -> int:
  if env.get("ARM_COORDINATOR_PORT"):
    port = _int(env, "ARM_COORDINATOR_PORT")
    if not 0 < port < 65536:
      raise DistributedError(f"ARM_COORDINATOR_PORT={port} must be in 1..65535")
    return port
  # Same range as jax's own SLURM detection: the top 4096 ports, one per job id.
  job = int(env["SLURM_JOB_ID"]) if env.get("SLURM_JOB_ID", "").isdigit() else 0
  return 65535 - 4095 + job % 4096


def _slurm(env: Mapping[str, str]) -> Cluster:
  n = _int(env, "SLURM_NTASKS")
  if "SLURM_PROCID" not in env:
    raise DistributedError("SLURM_NTASKS is set but SLURM_PROCID is not; start one task per "
                           "host with srun (see launch/gpu/job.sbatch)")
  pid = _int(env, "SLURM_PROCID")
  _check_rank(pid, n, "SLURM_PROCID", "SLURM_NTASKS")
  nodelist = next((env[k] for k in _NODELIST if env.get(k)), "")
  if not nodelist:
    raise DistributedError("SLURM_NTASKS > 1 but no SLURM_STEP_NODELIST / SLURM_JOB_NODELIST / "
                           "SLURM_NODELIST to find the coordinator; run under srun or set "
                           "ARM_COORDINATOR")
  return Cluster("slurm", f"{first_host(nodelist)}:{_slurm_port(env)}", n, pid)


def tpu_chips_on_pci(pci_root: str | None = None) -> int:
  """Number of TPU chips attached to this host (0 off TPU VMs)."""
  pci_root = pci_root or PCI_ROOT
  chips = 0
  for vendor in glob.glob(os.path.join(pci_root, "*", "vendor")):
    device = pathlib.Path(vendor).with_name("device")
    try:
      if (pathlib.Path(vendor).read_text().strip() == _GOOGLE_PCI_VENDOR
          and device.read_text().strip() in _TPU_PCI_DEVICES):
        chips += 1
    except OSError:
      continue
  return chips


def cluster_from_env(env: Mapping[str, str] | None = None, pci_root: str | None = None) -> Cluster:
  """Reads the environment (default os.environ) -> Cluster. Raises DistributedError when the
  description is half there; never touches jax."""
  env = os.environ if env is None else env
  if env.get("ARM_DISTRIBUTED", "").lower() in ("0", "false", "off", "no"):
    return Cluster("single")
  if any(env.get(k) for k in _EXPLICIT):
    return _explicit(env)
  if env.get("SLURM_NTASKS") and _int(env, "SLURM_NTASKS") > 1:
    return _slurm(env)
  if any(env.get(k) for k in _TPU_ENV) or tpu_chips_on_pci(pci_root):
    return Cluster("tpu")
  return Cluster("single")


# ---------------------------------------------------------------------------------------------
# Joining the job
# ---------------------------------------------------------------------------------------------

def initialize(env: Mapping[str, str] | None = None) -> Cluster:
  """Joins the multi-process job the environment describes; a no-op for a single process and
  when already initialised. Must run before anything else touches jax devices."""
  import jax  # here, so reading the environment stays import-light

  cluster = cluster_from_env(env)
  if not cluster.multi_process or jax.distributed.is_initialized():
    return cluster
  if cluster.kind == "tpu":
    jax.distributed.initialize()
  else:
    # "deactivate": jax's own SLURM detection would otherwise pin each process to the single
    # GPU SLURM_LOCALID (it assumes one task per GPU); we run one task per host and want all of
    # its GPUs. JAX_LOCAL_DEVICE_IDS still narrows this when someone wants that.
    jax.distributed.initialize(cluster.coordinator, num_processes=cluster.num_processes,
                               process_id=cluster.process_id,
                               cluster_detection_method="deactivate")
  logging.info("jax.distributed (%s): process %d of %d, %d local / %d global devices",
               cluster.kind, jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  return cluster


def process_info() -> tuple[int, int]:
  """(process_index, process_count): which shard of every global batch this process loads."""
  import jax
  return jax.process_index(), jax.process_count()


def local_batch_size(global_batch: int, process_count: int | None = None) -> int:
  """Rows of each global batch one process loads; the batch must split evenly over processes."""
  count = process_info()[1] if process_count is None else process_count
  if global_batch % count:
    raise DistributedError(f"train.batch_size ({global_batch}) must divide by the number of "
                           f"processes ({count}); pick a multiple of {count}")
  return global_batch // count
