"""Errors caused by the user's input (a bad file, config, prompt, image, checkpoint).

The CLI prints these as one line and exits with status 2; everything else is a bug and keeps its
traceback. Library code raises a subclass with a message that says what was wrong and what to do.
"""


class UserError(RuntimeError):
  """Bad input: reported as a single line that says what to change."""
