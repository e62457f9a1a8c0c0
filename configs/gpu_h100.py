"""The 7B recipe on GPU hosts (8x H100 per host): cuDNN attention, FSDP within a host, data
parallel across hosts (HSDP).

    arm-jax aot --config configs/gpu_h100.py --topology h100-8     # analytic memory + step time
    launch/gpu/sbatch.sh configs/gpu_h100.py runs/arm_7b_gpu   # SLURM, see README

Why HSDP: FSDP across hosts would re-gather every weight over the 400 Gb/s per-GPU network once
per micro-batch: on 2 hosts ~19 s of traffic per ~3 s step (`arm-jax aot --topology h100-16
--config.mesh.shape=(1,-1,1)`). Sharded over the 8 NVLink-connected GPUs of a host, the state is
15 GiB per GPU and only the gradients cross hosts, once per step (~1.2 s of traffic, hidden).
mesh (-1, 8, 1): data = hosts, fsdp = the 8 GPUs of a host.

Memory (analytic, arm_jax/train/memory.py; it reads 6-12% under the TPU compiler's figure for the
same model): the global batch of 128 x 4096 tokens runs as 8 micro-batches; on one host that is 2
sequences per GPU per micro-batch, ~58 GiB of an H100's 80. Launchers set
XLA_PYTHON_CLIENT_MEM_FRACTION=0.92 (jax's default 0.75 would cap the allocator at 60 GiB).
Hosts: 1 or 2 as is; 4 hosts: --config.train.grad_accum=4 (the micro-batch must cover every GPU).
"""
import importlib.util
import os


def get_config():
  spec = importlib.util.spec_from_file_location(
      "arm_7b", os.path.join(os.path.dirname(__file__), "arm_7b.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.name = "gpu_h100"
  c.model.attention = "cudnn"
  c.model.remat = "dots_with_no_batch_dims_saveable"
  c.train.batch_size = 128
  c.train.grad_accum = 8        # 2 sequences per GPU per micro-batch on one host
  c.mesh.shape = (-1, 8, 1)     # data across hosts, fsdp over a host's 8 GPUs
  return c
