"""Every test process sees 8 fake CPU devices (sharding tests compare against one device).

Test programs are tiny, so the suite's time goes to XLA compiling them, not running them:
LLVM's optimisation level 0 halves compile time on CPU (the HLO passes, fusion and numerics
contract stay the same; tests compare runs under the same flags), and a compilation cache shared
by the workers and the subprocesses they start compiles a program seen before only once.
"""
import os
import tempfile

TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {TEST_XLA_FLAGS}"
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"arm_jax_test_xla_cache_{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import pytest  # noqa: E402


@pytest.fixture
def tiny_overrides():
  """A model small enough for sharded tests on 8 fake devices, f32 for tight comparisons."""
  return ["--config.model.d_model=64", "--config.model.n_layers=2", "--config.model.n_heads=4",
          "--config.model.n_kv_heads=2", "--config.model.head_dim=16", "--config.model.d_ff=128",
          "--config.model.dtype='float32'", "--config.train.seq_len=32",
          "--config.train.batch_size=8", "--config.data.dataset=synthetic",
          "--config.train.log_every=5", "--config.train.warmup_steps=2"]
