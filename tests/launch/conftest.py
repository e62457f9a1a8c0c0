"""Stub `gcloud` / `sbatch` / `srun` / `ssh` executables that record every call they receive.

A stub appends its argv to calls.jsonl and answers by the first rule whose text occurs in the
joined argv: `stubs.respond("tpu-vm describe", [("PREEMPTED", 0), ("READY", 0)])` answers the
first describe with PREEMPTED, every later one with READY. Unmatched calls print nothing, exit 0.
A .tgz file named in a call is kept as uploaded.tgz (what copy.sh would have sent).
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_STUB = textwrap.dedent("""\
    #!{python}
    import json, os, shutil, sys
    root = {root!r}
    argv = [os.path.basename(sys.argv[0])] + sys.argv[1:]
    with open(os.path.join(root, "calls.jsonl"), "a") as f:
        f.write(json.dumps(argv) + "\\n")
    for arg in argv[1:]:  # keep what would have been uploaded, for the test to open
        if arg.endswith(".tgz") and os.path.isfile(arg):
            shutil.copy(arg, os.path.join(root, "uploaded.tgz"))
    rules_path = os.path.join(root, "rules.json")
    rules = json.load(open(rules_path)) if os.path.exists(rules_path) else []
    line = " ".join(argv)
    for rule in rules:
        if rule["match"] in line:
            out, rc = rule["outputs"].pop(0) if len(rule["outputs"]) > 1 else rule["outputs"][0]
            json.dump(rules, open(rules_path, "w"))
            print(out, file=sys.stdout if rc == 0 else sys.stderr)
            sys.exit(rc)
""")


class Stubs:
  def __init__(self, root):
    self.root = str(root)
    self.bin = os.path.join(self.root, "bin")
    os.makedirs(self.bin)
    for name in ("gcloud", "sbatch", "srun", "ssh"):
      path = os.path.join(self.bin, name)
      with open(path, "w") as f:
        f.write(_STUB.format(python=sys.executable, root=self.root))
      os.chmod(path, 0o755)
    self.rules = []

  def respond(self, match: str, outputs: list[tuple[str, int]]) -> None:
    self.rules.append({"match": match, "outputs": [list(o) for o in outputs]})
    with open(os.path.join(self.root, "rules.json"), "w") as f:
      json.dump(self.rules, f)

  def run(self, script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("ARM_", "SLURM_"))}
    full_env.update(PATH=f"{self.bin}:{os.environ['PATH']}", TMPDIR=self.root, **(env or {}))
    return subprocess.run(["bash", os.path.join(REPO, script), *args], env=full_env,
                          capture_output=True, text=True, timeout=120, cwd=self.root)

  @staticmethod
  def flag(call: list[str], name: str) -> str | None:
    """The value of --name=VALUE in a recorded call (None when absent)."""
    prefix = f"--{name}="
    return next((a[len(prefix):] for a in call if a.startswith(prefix)), None)

  def calls(self, program: str | None = None) -> list[list[str]]:
    path = os.path.join(self.root, "calls.jsonl")
    if not os.path.exists(path):
      return []
    with open(path) as f:
      calls = [json.loads(line) for line in f]
    return [c for c in calls if program is None or c[0] == program]


@pytest.fixture
def stubs(tmp_path):
  return Stubs(tmp_path)
