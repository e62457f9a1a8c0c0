"""launch/tpu/*.sh against a stub gcloud: the calls they make, their dry runs and their errors."""
import os
import subprocess
import tarfile

import pytest

TARGET = ("--name", "arm-v5p", "--zone", "us-east5-a")
SCRIPTS = ["create", "copy", "install", "run", "logs", "delete", "keep_running"]


def tpu(name):
  return f"launch/tpu/{name}.sh"


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(stubs, name):
  r = stubs.run(tpu(name), "--help")
  assert r.returncode == 0 and r.stdout.startswith("Usage: launch/tpu/")
  assert stubs.calls() == []


def test_create_on_demand_spot_from_a_chip_shape(stubs):
  r = stubs.run(tpu("create"), *TARGET, "--type", "v5p:2x4x4", "--spot")
  assert r.returncode == 0, r.stderr
  assert stubs.calls() == [["gcloud", "compute", "tpus", "tpu-vm", "create", "arm-v5p",
                            "--zone=us-east5-a", "--accelerator-type=v5p-64",
                            "--version=v2-alpha-tpuv5", "--spot"]]


def test_create_queued_waits_until_active(stubs):
  stubs.respond("queued-resources describe",
                [("WAITING_FOR_RESOURCES", 0), ("PROVISIONING", 0), ("ACTIVE", 0)])
  r = stubs.run(tpu("create"), *TARGET, "--project", "proj", "--type", "v6e-16", "--queued",
                "--spot", "--valid-until", "6h", "--poll", "0")
  assert r.returncode == 0, r.stderr
  create, *describes = stubs.calls()
  assert create[:6] == ["gcloud", "compute", "tpus", "queued-resources", "create", "arm-v5p"]
  assert stubs.flag(create, "node-id") == "arm-v5p"
  assert stubs.flag(create, "accelerator-type") == "v6e-16"
  assert stubs.flag(create, "runtime-version") == "v2-alpha-tpuv6e"
  assert stubs.flag(create, "valid-until-duration") == "6h"
  assert stubs.flag(create, "zone") == "us-east5-a" and stubs.flag(create, "project") == "proj"
  assert "--spot" in create
  assert len(describes) == 3 and all("describe" in c for c in describes)


def test_create_queued_failure_is_one_line(stubs):
  stubs.respond("queued-resources describe", [("FAILED", 0)])
  r = stubs.run(tpu("create"), *TARGET, "--type", "v5p-8", "--queued", "--poll", "0")
  last = r.stderr.splitlines()[-1]
  assert r.returncode == 2 and last.startswith("create.sh: error: ") and "is FAILED" in last


@pytest.mark.parametrize("args, message", [
    (TARGET, "no slice type"),
    (("--zone", "z", "--type", "v5p-8"), "no TPU name"),
    (("--name", "a", "--type", "v5p-8"), "no zone"),
    (("--name", "Bad_Name", "--zone", "z", "--type", "v5p-8"), "lowercase"),
    (TARGET + ("--type", "v5p-63"), "must be even"),
    (TARGET + ("--type", "h100-8"), "not a TPU slice"),
    (TARGET + ("--type", "v5p-8", "--queued", "--preemptible"), "not --preemptible"),
    (TARGET + ("--type", "v5p-8", "--valid-until", "1h"), "only applies with --queued"),
    (TARGET + ("--type", "v5p-8", "--spot", "--reserved"), "choose one of"),
    (TARGET + ("--typo",), "unknown option '--typo'"),
    (TARGET + ("--type",), "--type needs a value"),
])
def test_create_bad_input(stubs, args, message):
  r = stubs.run(tpu("create"), *args)
  assert r.returncode == 2 and message in r.stderr, r.stderr
  assert r.stderr.count("\n") == 1 and r.stderr.startswith("create.sh: error: ")
  assert stubs.calls() == []


def test_copy_sends_the_code_without_venv_to_all_workers(stubs, tmp_path):
  src = tmp_path / "src"
  for rel in ("arm_jax/model.py", ".venv/bin/python", ".git/HEAD", "runs/x/ckpt", "README.md"):
    (src / rel).parent.mkdir(parents=True, exist_ok=True)
    (src / rel).write_text("x")
  r = stubs.run(tpu("copy"), *TARGET, "--src", str(src))
  assert r.returncode == 0, r.stderr
  scp, ssh = stubs.calls()
  assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"]
  assert scp[6] == "arm-v5p:arm_jax.tgz" and stubs.flag(scp, "worker") == "all"
  assert stubs.flag(ssh, "worker") == "all"
  assert "tar -xzf arm_jax.tgz -C arm_jax" in stubs.flag(ssh, "command")
  with tarfile.open(tmp_path / "uploaded.tgz") as tar:
    names = {n.lstrip("./") for n in tar.getnames()}
  assert {"arm_jax/model.py", "README.md"} <= names
  assert not any(n.startswith((".venv", ".git", "runs")) for n in names)


def test_install_uses_the_pinned_jax_with_libtpu(stubs):
  r = stubs.run(tpu("install"), *TARGET)
  assert r.returncode == 0, r.stderr
  (ssh,) = stubs.calls()
  command = stubs.flag(ssh, "command")
  assert stubs.flag(ssh, "worker") == "all"
  assert "'jax[tpu]==0.10.2'" in command and "-r requirements.txt" in command
  assert "--python 3.11" in command and "--no-deps -e ." in command


def test_run_runs_the_same_command_on_all_workers(stubs, tmp_path):
  cmd = ["arm-jax", "pretrain", "--config", "configs/arm_7b.py", "--workdir",
         "gs://bucket/it's a run", "--config.train.steps=5"]
  r = stubs.run(tpu("run"), *TARGET, "--env", "LIBTPU_INIT_ARGS=--a=1 --b", "--", *cmd)
  assert r.returncode == 0, r.stderr
  (ssh,) = stubs.calls()
  assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "arm-v5p"]
  assert stubs.flag(ssh, "worker") == "all" and stubs.flag(ssh, "zone") == "us-east5-a"
  # Run the recorded remote command in a fake home: the arguments arrive intact, the
  # environment is set, and the output lands in the log.
  home = tmp_path / "home"
  (home / "arm_jax/.venv/bin").mkdir(parents=True)
  (home / "arm_jax/.venv/bin/activate").write_text(f'PATH="{home}/arm_jax/.venv/bin:$PATH"\n')
  fake = home / "arm_jax/.venv/bin/arm-jax"
  fake.write_text('#!/usr/bin/env bash\necho "LIBTPU=$LIBTPU_INIT_ARGS"\n'
                  'for a in "$@"; do echo "ARG=$a"; done\n')
  fake.chmod(0o755)
  out = subprocess.run(["bash", "-c", stubs.flag(ssh, "command")], cwd=home,
                       capture_output=True, text=True, check=True).stdout
  expected = ["LIBTPU=--a=1 --b"] + [f"ARG={a}" for a in cmd[1:]]
  assert out.splitlines() == expected
  assert (home / "arm_jax/logs/run.log").read_text().splitlines() == expected


def test_run_fails_when_a_worker_fails(stubs):
  stubs.respond("tpu-vm ssh", [("worker 3 died", 255)])
  r = stubs.run(tpu("run"), *TARGET, "--", "arm-jax", "pretrain")
  assert r.returncode == 255


def test_run_detached_and_bad_input(stubs):
  assert stubs.run(tpu("run"), *TARGET, "--detach", "--", "arm-jax", "eval").returncode == 0
  command = stubs.flag(stubs.calls()[0], "command")
  assert "nohup arm-jax eval >> logs/run.log" in command and command.endswith("&")
  for args, message in [((), "no command"), (("--env", "1X=2", "--", "a"), "KEY=VALUE"),
                        (("--worker", "x", "--", "a"), "--worker 'x'")]:
    r = stubs.run(tpu("run"), *TARGET, *args)
    assert r.returncode == 2 and message in r.stderr


def test_logs_and_delete(stubs):
  assert stubs.run(tpu("logs"), *TARGET, "--worker", "2", "--lines", "50", "-f").returncode == 0
  assert stubs.run(tpu("delete"), *TARGET).returncode == 0
  assert stubs.run(tpu("delete"), *TARGET, "--queued").returncode == 0
  logs, delete, delete_queued = stubs.calls()
  assert stubs.flag(logs, "worker") == "2"
  assert stubs.flag(logs, "command") == "tail -n 50 -F arm_jax/logs/run.log"
  assert delete == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "arm-v5p",
                    "--zone=us-east5-a", "--quiet"]
  assert delete_queued[3:6] == ["queued-resources", "delete", "arm-v5p"]
  assert "--force" in delete_queued


@pytest.mark.parametrize("name, args", [
    ("create", ("--type", "v5p-64", "--queued", "--spot")),
    ("copy", ()),
    ("install", ()),
    ("run", ("--", "arm-jax", "pretrain")),
    ("logs", ()),
    ("delete", ()),
    ("keep_running", ("--type", "v5p-64", "--spot", "--", "arm-jax", "pretrain",
                      "--workdir", "gs://b/r")),
])
def test_dry_run_prints_and_calls_nothing(stubs, name, args):
  r = stubs.run(tpu(name), *TARGET, "--dry-run", *args)
  assert r.returncode == 0, r.stderr
  assert stubs.calls() == []
  lines = r.stdout.splitlines()
  assert lines and all(l.startswith(("+ gcloud ", "+ tar ")) for l in lines)
  assert any("--zone=us-east5-a" in l for l in lines)


# ---------------------------------------------------------------------------------------------
# keep_running.sh: preemption -> re-create, re-install, rerun; done only on a healthy finish
# ---------------------------------------------------------------------------------------------

RUN = ["arm-jax", "pretrain", "--config", "configs/arm_7b.py", "--workdir", "gs://bucket/run"]
FAST = ("--settle", "0", "--poll", "0")


def _verbs(stubs, calls=None):
  """gcloud calls as 'tpu-vm create' etc.; ssh calls named by what they run."""
  verbs = []
  for c in stubs.calls() if calls is None else calls:
    verb = " ".join(c[3:5])
    if verb == "tpu-vm ssh":
      command = stubs.flag(c, "command")
      verb = "run" if "arm-jax" in command else "install" if "uv" in command else "unpack"
    verbs.append(verb)
  return verbs


def test_keep_running_recreates_a_preempted_slice_and_resumes(stubs):
  stubs.respond("tpu-vm describe",
                [("ERROR: NOT_FOUND", 1),        # start: no slice yet
                 ("PREEMPTED", 0),               # after the first run
                 ("PREEMPTED", 0),               # top of the loop
                 ("READY", 0)])                  # after the second run
  stubs.respond("tee -a logs/run.log", [("connection closed", 255), ("", 0)])
  r = stubs.run(tpu("keep_running"), *TARGET, "--type", "v5p-64", "--spot", *FAST, "--", *RUN)
  assert r.returncode == 0, r.stderr
  assert _verbs(stubs) == [
      "tpu-vm describe", "tpu-vm create", "tpu-vm scp", "unpack", "install", "run",
      "tpu-vm describe",
      "tpu-vm describe", "tpu-vm delete", "tpu-vm create", "tpu-vm scp", "unpack", "install",
      "run", "tpu-vm describe"]
  creates = [c for c in stubs.calls() if c[3:5] == ["tpu-vm", "create"]]
  assert all("--spot" in c and stubs.flag(c, "accelerator-type") == "v5p-64" for c in creates)
  runs = [c for c in stubs.calls() if _verbs(stubs, [c]) == ["run"]]
  assert all(stubs.flag(c, "worker") == "all" for c in runs)
  assert all(" ".join(RUN) in stubs.flag(c, "command") for c in runs)
  assert "preempted, resuming" in r.stderr and "restart 1 of 20" in r.stderr


def test_keep_running_stops_after_repeated_failures_on_a_ready_slice(stubs):
  stubs.respond("tpu-vm describe", [("READY", 0)])
  stubs.respond("tee -a logs/run.log", [("Traceback", 1)])
  r = stubs.run(tpu("keep_running"), *TARGET, "--type", "v5p-8", "--max-failures", "1", *FAST,
                "--", *RUN)
  assert r.returncode == 2 and "failed (exit 1) on a READY slice 2 times" in r.stderr
  assert _verbs(stubs).count("run") == 2
  assert "tpu-vm create" not in _verbs(stubs)


def test_keep_running_gives_up_after_max_restarts(stubs):
  stubs.respond("tpu-vm describe", [("PREEMPTED", 0)])
  r = stubs.run(tpu("keep_running"), *TARGET, "--type", "v5p-8", "--max-restarts", "1", *FAST,
                "--", *RUN)
  assert r.returncode == 2 and "--max-restarts (1) is used up" in r.stderr
  assert _verbs(stubs).count("tpu-vm create") == 2   # the first, then one restart


def test_keep_running_queued_recreates_through_the_queue(stubs):
  stubs.respond("tpu-vm describe", [("PREEMPTED", 0), ("READY", 0)])
  stubs.respond("queued-resources describe", [("ACTIVE", 0)])
  r = stubs.run(tpu("keep_running"), *TARGET, "--type", "v6e-16", "--queued", "--spot", *FAST,
                "--", *RUN)
  assert r.returncode == 0, r.stderr
  verbs = _verbs(stubs)
  assert verbs[:4] == ["tpu-vm describe", "queued-resources delete", "queued-resources create",
                       "queued-resources describe"]


@pytest.mark.parametrize("args, message", [
    (("--type", "v5p-8", "--", "arm-jax", "pretrain"), "no --workdir"),
    (("--type", "v5p-8"), "no command"),
    (("--", *RUN), "no slice type"),
    (("--type", "v5p-7", "--", *RUN), "must be even"),
    (("--type", "v5p-8", "--settle", "soon", "--", *RUN), "'soon' is not a whole number"),
])
def test_keep_running_bad_input(stubs, args, message):
  r = stubs.run(tpu("keep_running"), *TARGET, *args)
  assert r.returncode == 2 and message in r.stderr, r.stderr
  assert stubs.calls() == []


def test_keep_running_warns_about_a_local_workdir(stubs):
  r = stubs.run(tpu("keep_running"), *TARGET, "--type", "v5p-8", "--dry-run", "--",
                "arm-jax", "pretrain", "--workdir=runs/x")
  assert r.returncode == 0 and "not on gs://" in r.stderr


def test_scripts_are_strict_bash():
  for name in SCRIPTS:
    with open(os.path.join(os.path.dirname(__file__), "../..", tpu(name))) as f:
      head = f.read(300)
    assert head.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in head
