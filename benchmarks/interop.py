"""Import/export time and peak host memory for a ~1B-parameter random Qwen2-shaped checkpoint.

    python benchmarks/interop.py               # ~1.1B params, bf16 on disk (~2.3 GB), ~6 GB free disk
    python benchmarks/interop.py --small       # a ~60M model, to check the script

Each phase runs in a fresh subprocess and reports its wall time and peak RSS (ru_maxrss) minus
the RSS of the same process right after its imports, so the figure is the phase's own memory.
The checkpoint is bf16 and the arm_jax params are bf16 too (model.param_dtype), so the imported
model itself is ~1.0x the checkpoint: the streaming claim is that no phase needs much more.
Baselines measured in the same run: a plain sequential read of the checkpoint files (time), and
a naive import that reads every tensor, then stacks and places them (memory).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZES = {
    # TinyLlama-1.1B-like widths with Qwen2 attention (QKV bias): 1.13B params with the vocab.
    "1b": dict(d_model=2048, n_layers=22, n_heads=16, n_kv_heads=4, head_dim=128, d_ff=5632,
               text_vocab_size=32000),
    "small": dict(d_model=512, n_layers=8, n_heads=8, n_kv_heads=2, head_dim=64, d_ff=1536,
                  text_vocab_size=32000),
}


def _overrides(size: str) -> list[str]:
  keys = dict(SIZES[size], param_dtype="'bfloat16'", max_seq_len=2048)
  return ([f"--config.model.{k}={v}" for k, v in keys.items()] +
          ["--config.mesh.shape=(1,1,1)", "--config.interop.export_dtype=bfloat16",
           "--config.interop.shard_mb=1024.0"])


def _config(size: str):
  from arm_jax.config import load_config
  return load_config("shapes_tiny", _overrides(size))


def _rss_mb() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return 0.0


# ---------------------------------------------------------------------------------------------
# Phases (each runs in its own process)
# ---------------------------------------------------------------------------------------------

def write_checkpoint(cfg, hf_dir: str) -> None:
  """Random bf16 Qwen2 checkpoint in 1 GB shards, config.json and a small tokenizer.json."""
  import ml_dtypes
  from arm_jax.interop import hf_layout as L
  from arm_jax.interop.safetensors_io import TensorSpec, write_sharded
  m = cfg.model
  bf16 = np.dtype(ml_dtypes.bfloat16)
  shapes = {L.EMBED: (m.text_vocab_size, m.d_model), L.LM_HEAD: (m.text_vocab_size, m.d_model),
            L.FINAL_NORM: (m.d_model,)}
  per = {"q_proj": m.n_heads * m.head_dim, "k_proj": m.n_kv_heads * m.head_dim,
         "v_proj": m.n_kv_heads * m.head_dim}
  for i in range(m.n_layers):
    a, f = f"model.layers.{i}.self_attn.", f"model.layers.{i}.mlp."
    for name, rows in per.items():
      shapes[a + name + ".weight"] = (rows, m.d_model)
      shapes[a + name + ".bias"] = (rows,)
    shapes[a + "o_proj.weight"] = (m.d_model, m.n_heads * m.head_dim)
    shapes[f + "gate_proj.weight"] = shapes[f + "up_proj.weight"] = (m.d_ff, m.d_model)
    shapes[f + "down_proj.weight"] = (m.d_model, m.d_ff)
    shapes[f"model.layers.{i}.input_layernorm.weight"] = (m.d_model,)
    shapes[f"model.layers.{i}.post_attention_layernorm.weight"] = (m.d_model,)

  def random(shape, seed):
    rng = np.random.default_rng(seed)
    for start in range(0, shape[0], 1024):
      block = (min(1024, shape[0] - start),) + shape[1:]
      yield (rng.standard_normal(block, np.float32) * 0.02).astype(bf16)

  specs = [TensorSpec(n, s, bf16, lambda s=s, k=k: random(s, k))
           for k, (n, s) in enumerate(shapes.items())]
  write_sharded(hf_dir, "model", specs, 2**30, metadata={"format": "pt"})
  hf = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size":
        m.text_vocab_size, "hidden_size": m.d_model, "intermediate_size": m.d_ff,
        "num_hidden_layers": m.n_layers, "num_attention_heads": m.n_heads,
        "num_key_value_heads": m.n_kv_heads, "head_dim": m.head_dim, "rope_theta": m.rope_theta,
        "rms_norm_eps": m.norm_eps, "tie_word_embeddings": False, "hidden_act": "silu"}
  tokenizer = {"model": {"type": "WordLevel", "unk_token": "[UNK]",
                         "vocab": {f"w{i}": i for i in range(1000)}}, "added_tokens": []}
  for name, body in (("config.json", hf), ("tokenizer.json", tokenizer)):
    with open(os.path.join(hf_dir, name), "w") as f:
      json.dump(body, f)


def read_files(hf_dir: str) -> None:
  """Baseline: every byte of the checkpoint read once, sequentially, into a reused buffer."""
  buf = bytearray(2**24)
  for name in sorted(os.listdir(hf_dir)):
    if name.endswith(".safetensors"):
      with open(os.path.join(hf_dir, name), "rb", buffering=0) as f:
        while f.readinto(buf):
          pass


def naive_import(cfg, hf_dir: str) -> None:
  """Baseline: all tensors read whole, then stacked/transposed, then placed (no streaming)."""
  import jax
  from arm_jax import sharding as shd
  from arm_jax.interop import hf_layout as L
  from arm_jax.interop import weights
  from arm_jax.interop.safetensors_io import TensorIndex
  from arm_jax.train.pretrain import decoder_fn
  from arm_jax.train.state import param_shardings
  index = TensorIndex.open(hf_dir)
  tensors = {n: index.read(n) for n in index.names()}
  m = cfg.model
  flat = {".".join(t.path): np.stack([tensors[t.name(i)].T if t.transpose else tensors[t.name(i)]
                                      for i in range(m.n_layers)])
          for t in L.layer_tensors(m.qkv_bias)}
  flat["final_norm.scale"] = tensors[L.FINAL_NORM]
  mesh = shd.make_mesh(cfg.mesh)
  _, abstract, shardings = param_shardings(decoder_fn(cfg), mesh, shd.rules_of(cfg.mesh))
  flat_sh, flat_abs = weights.flatten(shardings), weights.flatten(abstract)
  for name in ("embed.embedding", "text_head.kernel", "image_head.kernel"):
    shape = flat_abs[name].shape
    flat[name] = np.zeros(shape, flat_abs[name].dtype)   # the rows the extension would add
  flat["embed.embedding"][:m.text_vocab_size] = tensors[L.EMBED]
  flat["text_head.kernel"][:, :m.text_vocab_size] = tensors[L.LM_HEAD].T
  placed = {n: jax.device_put(x.astype(flat_abs[n].dtype), flat_sh[n]) for n, x in flat.items()}
  jax.block_until_ready(placed)


def import_to_mesh(cfg, hf_dir: str) -> None:
  import jax
  from arm_jax.interop.hf_import import import_params
  jax.block_until_ready(import_params(hf_dir, cfg))


def import_to_disk(cfg, hf_dir: str, out_dir: str) -> None:
  from arm_jax.interop.hf_import import import_hf
  import_hf(hf_dir, cfg, out_dir)


def save_checkpoint(cfg, out_dir: str, ckpt_dir: str) -> None:
  """An arm_jax checkpoint step holding the imported params (what export-hf reads)."""
  import orbax.checkpoint as ocp
  from arm_jax import sharding as shd
  from arm_jax.interop.weights import load_params
  from arm_jax.train.pretrain import decoder_fn
  from arm_jax.train.state import param_shardings
  mesh = shd.make_mesh(cfg.mesh)
  _, _, shardings = param_shardings(decoder_fn(cfg), mesh, shd.rules_of(cfg.mesh))
  params = load_params(out_dir, config=cfg, shardings=shardings)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.join(ckpt_dir, "1", "state"), {"params": params})


def load_to_mesh(cfg, out_dir: str) -> None:
  import jax
  from arm_jax import sharding as shd
  from arm_jax.interop.weights import load_params
  from arm_jax.train.pretrain import decoder_fn
  from arm_jax.train.state import param_shardings
  mesh = shd.make_mesh(cfg.mesh)
  _, _, shardings = param_shardings(decoder_fn(cfg), mesh, shd.rules_of(cfg.mesh))
  jax.block_until_ready(load_params(out_dir, config=cfg, shardings=shardings))


def export_checkpoint(cfg, ckpt_dir: str, export_dir: str) -> None:
  from arm_jax.interop.checkpoint_params import restore_params
  from arm_jax.interop.hf_export import export_params
  export_params(restore_params(os.path.join(ckpt_dir, "1"), cfg), cfg, export_dir)


def run_phase(args) -> None:
  # Imports and the XLA runtime count as the process baseline, not the phase.
  import jax
  import arm_jax.interop.hf_import  # noqa: F401
  import orbax.checkpoint  # noqa: F401
  jax.block_until_ready(jax.numpy.zeros(8) + 1)
  cfg = _config(args.size)
  d = args.dir
  hf, out, ckpt, export = (os.path.join(d, n) for n in ("hf", "imported", "ckpt", "export"))
  work = {"write": lambda: write_checkpoint(cfg, hf), "read": lambda: read_files(hf),
          "naive_import": lambda: naive_import(cfg, hf),
          "import_to_mesh": lambda: import_to_mesh(cfg, hf),
          "import_hf": lambda: import_to_disk(cfg, hf, out),
          "load_params": lambda: load_to_mesh(cfg, out),
          "save_ckpt": lambda: save_checkpoint(cfg, out, ckpt),
          "export_hf": lambda: export_checkpoint(cfg, ckpt, export)}[args.phase]
  base = _rss_mb()
  t = time.perf_counter()
  work()
  dt = time.perf_counter() - t
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(json.dumps({"seconds": dt, "peak_mb": peak, "base_mb": base}))


# ---------------------------------------------------------------------------------------------

def _dir_mb(path: str) -> float:
  return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)
             if f.endswith(".safetensors")) / 2**20


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--small", action="store_true", help="a ~60M model (checks the script)")
  parser.add_argument("--phase", help=argparse.SUPPRESS)
  parser.add_argument("--dir", help=argparse.SUPPRESS)
  parser.add_argument("--size", default="1b", help=argparse.SUPPRESS)
  parser.add_argument("--keep", default="", help="keep the files in this directory")
  args = parser.parse_args()
  if args.phase:
    run_phase(args)
    return
  size = "small" if args.small else "1b"
  root = args.keep or tempfile.mkdtemp(prefix="arm_jax_interop_bench_")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  results = {}
  try:
    for phase in ("write", "read", "import_hf", "import_to_mesh", "load_params", "naive_import",
                  "save_ckpt", "export_hf"):
      proc = subprocess.run([sys.executable, __file__, "--phase", phase, "--dir", root,
                             "--size", size], env=env, capture_output=True, text=True)
      if proc.returncode:
        sys.exit(f"phase {phase} failed:\n{proc.stderr[-3000:]}")
      results[phase] = json.loads(proc.stdout.strip().splitlines()[-1])
      if phase == "write":
        ckpt_mb = _dir_mb(os.path.join(root, "hf"))
    _report(results, ckpt_mb, _config(size))
  finally:
    if not args.keep:
      shutil.rmtree(root, ignore_errors=True)


def _report(results: dict, ckpt_mb: float, cfg) -> None:
  from arm_jax.interop.weights import abstract_params
  import jax
  n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(abstract_params(cfg)))
  read_s = results["read"]["seconds"]
  print(f"checkpoint: {ckpt_mb / 1024:.2f} GB bf16 on disk; arm_jax params: {n / 1e9:.2f}B "
        f"(bf16, vocabulary extended to {cfg.model.text_vocab_size} text + specials + "
        f"{cfg.model.image_vocab_size} image codes)")
  print(f"{'phase':<16}{'seconds':>9}{'x read':>8}{'GB/s':>7}{'peak MB':>10}{'phase MB':>10}"
        f"{'/ ckpt':>8}")
  for phase, r in results.items():
    own = r["peak_mb"] - r["base_mb"]
    print(f"{phase:<16}{r['seconds']:>9.1f}{r['seconds'] / read_s:>8.1f}"
          f"{ckpt_mb / 1024 / r['seconds']:>7.2f}{r['peak_mb']:>10.0f}{own:>10.0f}"
          f"{own / ckpt_mb:>8.2f}")
  print("x read = time / a plain sequential read of the checkpoint files (same run); phase MB = "
        "peak RSS - RSS after imports; / ckpt = phase MB / checkpoint size. On CPU the mesh's "
        "devices are host memory, so import_to_mesh/load_params/export hold the model itself "
        "(~1.0x) on top of what streaming costs.")


if __name__ == "__main__":
  main()
