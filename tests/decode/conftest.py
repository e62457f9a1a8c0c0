"""Fixtures of the decoding tests (helpers live in decode_helpers.py, importable by name)."""
import pytest

from decode_helpers import Tiny


@pytest.fixture(scope="module")
def tiny():
  """A tiny f32 decoder, built once per test module."""
  return Tiny()
