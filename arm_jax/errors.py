"""Errors caused by the user's input (a bad file, config, prompt, image, checkpoint).

The CLI prints these as one line and exits with status 2; everything else is a bug and keeps its
traceback. Library code raises a subclass with a message that says what was wrong and what to do.
"""


class UserError(RuntimeError):
  """Bad input: reported as a single line that says what to change."""


class Preempted(Exception):
  """SIGTERM arrived and a checkpoint was saved; rerunning the same command resumes (exit 0)."""

  def __init__(self, step: int, directory: str):
    super().__init__(f"stopped by SIGTERM at step {step}; checkpoint saved in {directory}; "
                     f"rerun the same command to resume")
    self.step = step
