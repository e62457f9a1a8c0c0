"""Input pipeline throughput next to what the train step consumes, measured in the same run.

    python benchmarks/input_pipeline.py            # shapes_tiny: 4000 training examples
    python benchmarks/input_pipeline.py --quick    # fewer examples and batches

Prints: shapes_world build rate, visual-code writing rate (patch-colour stand-in encoder), and
for each sequence format and the configured mixture the pipeline's examples/s, tokens/s (rows x
seq_len) and target tokens/s (loss_mask = 1), with 0 and 2 grain worker processes; then the
shapes_tiny train step's examples/s and the ratio pipeline / train step (>= 3 means the pipeline
is not the bottleneck). One CPU core per measurement unless workers are used; the train step
uses whatever XLA takes (both cores), so the ratio is conservative.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from arm_jax.config import load_config
from arm_jax.data import codes as codes_lib
from arm_jax.data import pipeline
from arm_jax.data.build import build_data
from arm_jax.data.sources import dataset_records


def build(cfg, root: str) -> tuple[str, str]:
  data_dir, codes_dir = os.path.join(root, "data"), os.path.join(root, "codes")
  n = cfg.data.num_train + cfg.data.num_validation + cfg.data.num_test
  t = time.perf_counter()
  build_data(cfg, data_dir)
  dt = time.perf_counter() - t
  print(f"build shapes_world ({n} examples + tokenizer): {dt:.1f} s, {n / dt:.0f} examples/s")
  encode = codes_lib.patch_color_encoder(cfg.tokenizer.patch_size,
                                         codes_lib.patch_color_levels(cfg.model.image_vocab_size))
  records = dataset_records(cfg, data_dir, "train")
  t = time.perf_counter()
  codes_lib.write_codes(encode, records, codes_lib.codes_path(codes_dir, records, "train"),
                        desc="codes (stand-in)")
  dt = time.perf_counter() - t
  print(f"write codes (stand-in encoder): {len(records) / dt:.0f} examples/s")
  return data_dir, codes_dir


def pipeline_rate(cfg, data_dir, codes_dir, batches: int) -> tuple[float, ...]:
  """(examples/s, tokens/s, target tokens/s, CPU ms per example in this process)."""
  it = pipeline.make_train_iterator(cfg, data_dir, codes_dir, seed=0)
  for _ in range(3):
    next(it)
  rows = targets = 0
  t, cpu = time.perf_counter(), time.process_time()
  for _ in range(batches):
    b = next(it)
    rows += b["inputs"].shape[0]
    targets += float(b["loss_mask"].sum())
  dt, cpu = time.perf_counter() - t, time.process_time() - cpu
  return rows / dt, rows * cfg.train.seq_len / dt, targets / dt, 1000 * cpu / rows


def train_step_rate(cfg, steps: int) -> tuple[float, float] | None:
  """(examples/s, CPU ms per example, all threads) of the stack's train step, or None."""
  try:
    import jax

    from arm_jax import sharding as shd
    from arm_jax.data.synthetic import synthetic_iterator
    from arm_jax.model.transformer import ModelConfig
    from arm_jax.train.optimizer import make_optimizer
    from arm_jax.train.pretrain import decoder_fn
    from arm_jax.train.state import create_state
    from arm_jax.train.step import lm_loss, make_train_step
  except ImportError as e:
    print(f"train step not available ({e}); pipeline figures only")
    return None
  mesh, rules = shd.make_mesh(cfg.mesh), shd.rules_of(cfg.mesh)
  tx = make_optimizer(cfg.train)
  state, spec = create_state(decoder_fn(cfg), tx, mesh, rules, seed=0)
  vocab = ModelConfig.from_config(cfg.model).vocab.total_size
  batch = next(synthetic_iterator(vocab, cfg.train.batch_size, cfg.train.seq_len))
  step = make_train_step(spec, tx, lm_loss, rules, batch_example=batch)
  batch = shd.global_batch(batch, mesh, rules)
  state, m = step(state, batch)
  jax.block_until_ready(m)
  t, cpu = time.perf_counter(), time.process_time()
  for _ in range(steps):
    state, m = step(state, batch)
  jax.block_until_ready(m)
  rows = steps * cfg.train.batch_size
  return rows / (time.perf_counter() - t), 1000 * (time.process_time() - cpu) / rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true")
  args = parser.parse_args()
  n = 1000 if args.quick else 4000
  batches = 10 if args.quick else 30
  cfg = load_config("shapes_tiny", [f"--config.data.num_train={n}",
                                    "--config.data.num_validation=10", "--config.data.num_test=10"])
  print(f"shapes_tiny: batch {cfg.train.batch_size} x seq_len {cfg.train.seq_len}, "
        f"mixture {dict(cfg.data.mixture)}")
  with tempfile.TemporaryDirectory() as root:
    data_dir, codes_dir = build(cfg, root)
    rows = [(f"format {fmt}", ((fmt, 1.0),), 0) for fmt in pipeline.FORMATS]
    rows += [("mixture", cfg.data.mixture, 0), ("mixture, 2 workers", cfg.data.mixture, 2)]
    rate, cpu_ms = {}, {}
    print(f"{'pipeline':24s} {'examples/s':>11s} {'tokens/s':>10s} {'target tok/s':>13s} "
          f"{'CPU ms/example':>15s}")
    for name, mixture, workers in rows:
      c = cfg.copy_and_resolve_references()
      c.data.mixture, c.data.worker_count = mixture, workers
      ex, tok, tgt, ms = pipeline_rate(c, data_dir, codes_dir, batches)
      rate[name], cpu_ms[name] = ex, ms
      print(f"{name:24s} {ex:11.0f} {tok:10.0f} {tgt:13.0f} "
            f"{ms if not workers else float('nan'):15.2f}")
  measured = train_step_rate(cfg, 5 if args.quick else 15)
  if measured:
    consumed, step_ms = measured
    print(f"train step (shapes_tiny): {consumed:.1f} examples/s, "
          f"{consumed * cfg.train.seq_len:.0f} tokens/s, {step_ms:.1f} CPU ms/example")
    for name in ("mixture", "mixture, 2 workers"):
      print(f"ratio pipeline ({name}) / train step, examples/s: {rate[name] / consumed:.1f}x")
    # Wall-clock rates swing with other load on a shared machine; CPU time per example does not
    # much: this is the ratio a dedicated machine would see if both had all cores.
    print(f"ratio train step / pipeline (mixture), CPU ms per example: "
          f"{step_ms / cpu_ms['mixture']:.1f}x")


if __name__ == "__main__":
  main()
