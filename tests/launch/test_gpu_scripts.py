"""launch/gpu/: the sbatch submission, the batch script's srun line, and the ssh launcher."""
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("script", ["launch/gpu/sbatch.sh", "launch/gpu/ssh_run.sh",
                                    "launch/gpu/job.sbatch"])
def test_help(stubs, script):
  r = stubs.run(script, "--help")
  assert r.returncode == 0 and r.stdout.startswith("Usage: "), r.stderr
  assert stubs.calls() == []


def test_sbatch_submits_one_task_per_node_with_all_gpus(stubs):
  r = stubs.run("launch/gpu/sbatch.sh", "--nodes", "2", "--partition", "gpu", "--time",
                "48:00:00", "--requeue", f"{REPO}/configs/gpu_h100.py", "/shared/runs/x",
                "--config.train.steps=10")
  assert r.returncode == 0, r.stderr
  (call,) = stubs.calls("sbatch")
  job = call.index(f"{REPO}/launch/gpu/job.sbatch")
  options, command = call[1:job], call[job + 1:]
  assert {"--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=8", "--partition=gpu",
          "--time=48:00:00", "--requeue", f"--export=ALL,ARM_REPO={REPO}"} <= set(options)
  assert command == ["arm-jax", "pretrain", "--config", f"{REPO}/configs/gpu_h100.py",
                     "--workdir", "/shared/runs/x", "--config.train.steps=10"]


def test_sbatch_makes_relative_paths_absolute(stubs):
  # The job runs in the repository; a relative workdir given here must not move.
  r = stubs.run("launch/gpu/sbatch.sh", "--command", "rl", "gpu_h100", "runs/x")
  assert r.returncode == 0, r.stderr
  (call,) = stubs.calls("sbatch")
  assert call[-5:] == ["rl", "--config", "gpu_h100", "--workdir", f"{stubs.root}/runs/x"]


@pytest.mark.parametrize("args, message", [
    (("configs/gpu_h100.py",), "need CONFIG and WORKDIR"),
    (("nope.py", "w"), "config 'nope.py' not found"),
    (("--nodes", "0", "gpu_h100", "w"), "--nodes '0'"),
    (("--gpus", "8", "gpu_h100", "w"), "unknown option '--gpus'"),
    (("--command", "Pre train", "gpu_h100", "w"), "not an arm-jax subcommand"),
])
def test_sbatch_bad_input(stubs, args, message):
  r = stubs.run("launch/gpu/sbatch.sh", *args)
  assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
  assert stubs.calls() == []


def test_sbatch_dry_run(stubs):
  r = stubs.run("launch/gpu/sbatch.sh", "--dry-run", "gpu_h100", "/w")
  assert r.returncode == 0 and r.stdout.startswith("+ sbatch ") and stubs.calls() == []


def test_job_template_asks_for_one_task_per_node_and_8_gpus():
  with open(os.path.join(REPO, "launch/gpu/job.sbatch")) as f:
    directives = dict(re.findall(r"^#SBATCH --([-a-z]+)=?(\S*)", f.read(), re.M))
  assert directives["ntasks-per-node"] == "1" and directives["gpus-per-node"] == "8"


def test_job_runs_srun_with_the_venv_command(stubs):
  r = stubs.run("launch/gpu/job.sbatch", "arm-jax", "pretrain", "--workdir", "/w",
                env={"ARM_REPO": REPO, "SLURM_JOB_NUM_NODES": "2"})
  assert r.returncode == 0, r.stderr
  (call,) = stubs.calls("srun")
  assert call == ["srun", "--ntasks-per-node=1", "--kill-on-bad-exit=1", f"--chdir={REPO}",
                  f"{REPO}/.venv/bin/arm-jax", "pretrain", "--workdir", "/w"]


def test_job_without_command_is_an_error(stubs):
  r = stubs.run("launch/gpu/job.sbatch")
  assert r.returncode == 2 and "no command" in r.stderr and stubs.calls() == []


# ---------------------------------------------------------------------------------------------
# ssh_run.sh
# ---------------------------------------------------------------------------------------------

def test_ssh_run_starts_one_process_per_host(stubs, tmp_path):
  hostfile = tmp_path / "hosts"
  hostfile.write_text("# two H100 hosts\nalice@10.0.0.1\n\n10.0.0.2  # second\n")
  r = stubs.run("launch/gpu/ssh_run.sh", "--hostfile", str(hostfile), "--dir", "/srv/arm jax",
                "--port", "9999", "--", "arm-jax", "pretrain", "--workdir", "/shared/run 1")
  assert r.returncode == 0, r.stderr
  calls = sorted(stubs.calls("ssh"), key=lambda c: re.search(r"ARM_PROCESS_ID=(\d+)", c[4])[1])
  assert [c[:4] for c in calls] == [["ssh", "-o", "BatchMode=yes", "alice@10.0.0.1"],
                                    ["ssh", "-o", "BatchMode=yes", "10.0.0.2"]]
  for i, call in enumerate(calls):
    remote = call[4]
    assert remote.startswith("cd '/srv/arm jax' && ")
    assert f"ARM_COORDINATOR=10.0.0.1:9999 ARM_NUM_PROCESSES=2 ARM_PROCESS_ID={i}" in remote
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION=0.92" in remote   # not jax's default 75% of HBM
    assert remote.endswith("exec arm-jax pretrain --workdir '/shared/run 1'")


def test_ssh_run_environment_is_what_arm_jax_distributed_reads(stubs, tmp_path):
  """Run the recorded remote command here: the process it starts sees a complete cluster."""
  repo = tmp_path / "repo"
  (repo / ".venv/bin").mkdir(parents=True)
  probe = repo / ".venv/bin/arm-jax"
  probe.write_text(f"#!{sys.executable}\nimport sys; sys.path.insert(0, {REPO!r})\n"
                   "from arm_jax.distributed import cluster_from_env\n"
                   "print(cluster_from_env(pci_root='/nonexistent'), sys.argv[1:])\n")
  probe.chmod(0o755)
  r = stubs.run("launch/gpu/ssh_run.sh", "--hosts", "gpu1,gpu2,gpu3", "--dir", str(repo), "--",
                "arm-jax", "eval", "--workdir", "w")
  assert r.returncode == 0, r.stderr
  remote = next(c[4] for c in stubs.calls("ssh") if c[3] == "gpu3")
  env = {k: v for k, v in os.environ.items() if not k.startswith(("ARM_", "SLURM_"))}
  out = subprocess.run(["bash", "-c", remote], env=env, capture_output=True, text=True,
                       check=True).stdout
  assert out.strip() == ("Cluster(kind='explicit', coordinator='gpu1:8476', num_processes=3, "
                         "process_id=2) ['eval', '--workdir', 'w']")


def test_ssh_run_fails_when_a_host_fails(stubs):
  stubs.respond("gpu2", [("CUDA error", 3)])
  r = stubs.run("launch/gpu/ssh_run.sh", "--hosts", "gpu1,gpu2", "--", "arm-jax", "pretrain")
  assert r.returncode == 2 and "a host failed" in r.stderr
  assert "[gpu2] CUDA error" in r.stdout + r.stderr


@pytest.mark.parametrize("args, message", [
    (("--", "arm-jax"), "no hosts"),
    (("--hosts", "a,b"), "no command"),
    (("--hosts", "a", "--port", "0", "--", "x"), "--port '0'"),
    (("--hostfile", "/nonexistent", "--", "x"), "does not exist"),
    (("--hosts", "a", "arm-jax"), "put the command after --"),
])
def test_ssh_run_bad_input(stubs, args, message):
  r = stubs.run("launch/gpu/ssh_run.sh", *args)
  assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
  assert stubs.calls() == []


def test_ssh_run_dry_run(stubs):
  r = stubs.run("launch/gpu/ssh_run.sh", "--dry-run", "--hosts", "a,b", "--", "arm-jax", "x")
  assert r.returncode == 0 and stubs.calls() == []
  assert [l.split()[:4] for l in r.stdout.splitlines()] == [["+", "ssh", "-o", "BatchMode=yes"]] * 2
