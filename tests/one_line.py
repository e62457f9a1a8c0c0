"""What the fault tests share: the one-device mesh override, and the check that a command's
stderr is exactly one error line."""

ONE_DEVICE = ["--config.mesh.shape=(1,1,1)"]


def one_error_line(err: str, command: str) -> str:
  """`err` (a command's stderr) is one `arm-jax <command>: error: ...` line, no traceback."""
  assert "Traceback" not in err, err[-3000:]
  lines = [line for line in err.splitlines() if line.strip()]
  assert len(lines) == 1, err[-3000:]
  assert lines[0].startswith(f"arm-jax {command}: error: "), lines[0]
  return lines[0]
