"""The 7B recipe on GPU hosts (8x H100 per host): cuDNN attention, FSDP within and across hosts.

    launch/gpu/sbatch.sh configs/gpu_h100.py runs/arm_7b_gpu   # SLURM, see README
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
  c.mesh.shape = (1, -1, 1)
  return c
