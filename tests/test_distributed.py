"""Cluster discovery from the environment (no cluster needed) and a real 2-process CPU job."""
import os
import re
import socket
import subprocess
import sys
import textwrap

import pytest

from arm_jax import distributed
from arm_jax.distributed import Cluster, DistributedError, cluster_from_env, first_host
from arm_jax.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def no_pci(tmp_path):
  return str(tmp_path / "no_pci")


def test_nothing_set_is_single_process(no_pci):
  assert cluster_from_env({}, no_pci) == Cluster("single")
  assert not Cluster("single").multi_process


def test_explicit_variables(no_pci):
  env = {"ARM_COORDINATOR": "10.0.0.2:8476", "ARM_NUM_PROCESSES": "4", "ARM_PROCESS_ID": "3"}
  c = cluster_from_env(env, no_pci)
  assert c == Cluster("explicit", "10.0.0.2:8476", 4, 3) and c.multi_process


@pytest.mark.parametrize("env, message", [
    ({"ARM_COORDINATOR": "h:1"}, "ARM_NUM_PROCESSES, ARM_PROCESS_ID missing"),
    ({"ARM_COORDINATOR": "h:1", "ARM_NUM_PROCESSES": "2"}, "ARM_PROCESS_ID missing"),
    ({"ARM_PROCESS_ID": "0"}, "ARM_COORDINATOR, ARM_NUM_PROCESSES missing"),
    ({"ARM_COORDINATOR": "h:1", "ARM_NUM_PROCESSES": "two", "ARM_PROCESS_ID": "0"},
     "not an integer"),
    ({"ARM_COORDINATOR": "h:1", "ARM_NUM_PROCESSES": "2", "ARM_PROCESS_ID": "2"},
     r"must be in \[0, ARM_NUM_PROCESSES=2\)"),
    ({"ARM_COORDINATOR": "h:1", "ARM_NUM_PROCESSES": "0", "ARM_PROCESS_ID": "0"},
     "at least 1"),
    ({"ARM_COORDINATOR": "hostonly", "ARM_NUM_PROCESSES": "2", "ARM_PROCESS_ID": "0"},
     "must be HOST:PORT"),
    ({"ARM_COORDINATOR": "h:99999", "ARM_NUM_PROCESSES": "2", "ARM_PROCESS_ID": "0"},
     "must be HOST:PORT"),
])
def test_half_specified_explicit_env_is_one_line_user_error(env, message, no_pci):
  with pytest.raises(UserError, match=message) as e:
    cluster_from_env(env, no_pci)
  assert "\n" not in str(e.value)


def test_explicit_wins_over_slurm(no_pci):
  env = {"ARM_COORDINATOR": "a:1", "ARM_NUM_PROCESSES": "2", "ARM_PROCESS_ID": "1",
         "SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_NODELIST": "n[1-8]"}
  assert cluster_from_env(env, no_pci).kind == "explicit"


def test_slurm(no_pci):
  env = {"SLURM_NTASKS": "4", "SLURM_PROCID": "2", "SLURM_JOB_ID": "4097",
         "SLURM_JOB_NODELIST": "gpu[007-010]"}
  c = cluster_from_env(env, no_pci)
  assert c == Cluster("slurm", f"gpu007:{65535 - 4095 + 1}", 4, 2)
  # The step's node list is preferred, and an explicit port wins over the job-id port.
  env.update(SLURM_STEP_NODELIST="a1,b2", ARM_COORDINATOR_PORT="9000")
  assert cluster_from_env(env, no_pci).coordinator == "a1:9000"


def test_slurm_single_task_is_single_process(no_pci):
  env = {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_NODELIST": "n1"}
  assert cluster_from_env(env, no_pci).kind == "single"


@pytest.mark.parametrize("env, message", [
    ({"SLURM_NTASKS": "2", "SLURM_NODELIST": "n[1-2]"}, "SLURM_PROCID is not"),
    ({"SLURM_NTASKS": "2", "SLURM_PROCID": "0"}, "no SLURM_STEP_NODELIST"),
    ({"SLURM_NTASKS": "2", "SLURM_PROCID": "5", "SLURM_NODELIST": "n[1-2]"}, "must be in"),
    ({"SLURM_NTASKS": "x"}, "not an integer"),
    ({"SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_NODELIST": "n1",
      "ARM_COORDINATOR_PORT": "70000"}, "1..65535"),
])
def test_slurm_errors(env, message, no_pci):
  with pytest.raises(DistributedError, match=message):
    cluster_from_env(env, no_pci)


@pytest.mark.parametrize("nodelist, host", [
    ("node1", "node1"), ("gpu[003-004,010],cpu1", "gpu003"), ("a,b,c", "a"),
    ("rack[1-2]-n[01-04]", "rack1-n01"), ("n[5]", "n5"), ("x[09,11]", "x09"),
])
def test_first_host(nodelist, host):
  assert first_host(nodelist) == host


def test_first_host_refuses_garbage():
  with pytest.raises(DistributedError, match="ARM_COORDINATOR"):
    first_host("n[1-")


def _fake_pci(root, devices):
  for i, (vendor, device) in enumerate(devices):
    d = root / f"0000:00:0{i}.0"
    d.mkdir(parents=True)
    (d / "vendor").write_text(vendor + "\n")
    (d / "device").write_text(device + "\n")
  return str(root)


def test_tpu_vm_detected_from_pci(tmp_path):
  tpu = _fake_pci(tmp_path / "tpu", [("0x1ae0", "0x0062")] * 4 + [("0x8086", "0x0062")])
  assert distributed.tpu_chips_on_pci(tpu) == 4
  assert cluster_from_env({}, tpu) == Cluster("tpu") and Cluster("tpu").multi_process
  other = _fake_pci(tmp_path / "gpu", [("0x10de", "0x2330"), ("0x1ae0", "0x9999")])
  assert cluster_from_env({}, other).kind == "single"


def test_tpu_vm_detected_from_gke_variables(no_pci):
  assert cluster_from_env({"TPU_WORKER_ID": "1"}, no_pci).kind == "tpu"


def test_opt_out(tmp_path):
  tpu = _fake_pci(tmp_path / "tpu", [("0x1ae0", "0x006f")])
  env = {"ARM_DISTRIBUTED": "0", "SLURM_NTASKS": "2"}
  assert cluster_from_env(env, tpu).kind == "single"


def test_local_batch_size():
  assert distributed.local_batch_size(256, 8) == 32
  with pytest.raises(DistributedError, match="multiple of 3"):
    distributed.local_batch_size(256, 3)


def test_single_process_initialize_is_a_no_op(no_pci, monkeypatch):
  monkeypatch.setattr(distributed, "PCI_ROOT", no_pci)
  assert distributed.initialize({}).kind == "single"
  assert distributed.process_info() == (0, 1)


# ---------------------------------------------------------------------------------------------
# Two real processes on 127.0.0.1
# ---------------------------------------------------------------------------------------------

_WORKER = textwrap.dedent("""
    import numpy as np
    from arm_jax import distributed
    cluster = distributed.initialize()
    import jax
    from jax.experimental import multihost_utils
    index, count = distributed.process_info()
    local = np.array([100 * index + 7, jax.local_device_count()], np.int32)
    gathered = multihost_utils.process_allgather(local)
    # A file, not stdout: Gloo's C++ logging writes to stdout unsynchronised with Python's.
    with open(f"result_{index}.txt", "w") as f:
      f.write(f"RESULT {cluster.kind} {index} {count} {jax.device_count()} {gathered.tolist()}")
""")


def _xla_flags(devices: int) -> str:
  """The suite's XLA_FLAGS (tests/conftest.py) with `devices` fake CPU devices."""
  return re.sub(r"--xla_force_host_platform_device_count=\d+",
                f"--xla_force_host_platform_device_count={devices}", os.environ["XLA_FLAGS"])


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_cpu_processes_gather_across_processes(tmp_path):
  port = _free_port()
  procs = []
  for pid in range(2):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO,
               XLA_FLAGS=_xla_flags(2),
               ARM_COORDINATOR=f"127.0.0.1:{port}", ARM_NUM_PROCESSES="2",
               ARM_PROCESS_ID=str(pid))
    for key in [k for k in env if k.startswith(("SLURM_", "JAX_COMPILATION_CACHE"))]:
      del env[key]
    procs.append(subprocess.Popen([sys.executable, "-c", _WORKER], env=env, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outputs = []
  try:
    for p in procs:
      outputs.append(p.communicate(timeout=180))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for pid, (p, (out, err)) in enumerate(zip(procs, outputs)):
    assert p.returncode == 0, err[-2000:]
    result = (tmp_path / f"result_{pid}.txt").read_text()
    assert result == f"RESULT explicit {pid} 2 4 [[7, 2], [107, 2]]", (out + err)[-2000:]


def test_initialize_passes_the_cluster_to_jax(no_pci, monkeypatch):
  import jax
  calls = []
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **kw: calls.append((a, kw)))
  env = {"SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_NODELIST": "n[4-5]",
         "ARM_COORDINATOR_PORT": "1234"}
  assert distributed.initialize(env).kind == "slurm"
  # All of the host's GPUs: jax's SLURM detection is off, so it cannot pin SLURM_LOCALID's GPU.
  assert calls.pop() == (("n4:1234",), dict(num_processes=2, process_id=1,
                                             cluster_detection_method="deactivate"))
  assert distributed.initialize({"TPU_WORKER_ID": "0"}).kind == "tpu"
  assert calls.pop() == ((), {})
