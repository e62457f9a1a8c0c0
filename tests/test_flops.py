"""The benchmarks' MFU denominator: the best matmul rate over sizes and dtypes."""
import jax

from arm_jax.train import flops


def test_best_peak_is_the_fastest_size_and_dtype_tried(monkeypatch):
  rates = {(64, "bfloat16"): 1.0, (64, "float32"): 3.0, (128, "bfloat16"): 2.0,
           (128, "float32"): 2.5}
  monkeypatch.setattr(flops, "measure_peak_flops",
                      lambda n, reps, dtype: rates[(n, dtype.name)])
  peak = flops.best_peak(sizes=(64, 128))
  assert (peak.flops, peak.n, peak.dtype) == (3.0, 64, "float32")
  assert peak.device == jax.devices()[0].device_kind
  assert "float32 64x64" in str(peak) and peak.device in str(peak)


def test_best_peak_measures_a_real_matmul():
  peak = flops.best_peak(sizes=(64,), dtypes=("float32",), reps=1)
  assert peak.flops > 0 and peak.n == 64
