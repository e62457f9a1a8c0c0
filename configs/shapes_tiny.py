"""The toy recipe: the whole ARM pipeline on the shapes world, minutes on a 2-core CPU.

    arm-jax demo --config configs/shapes_tiny.py --workdir runs/demo
    arm-jax pretrain --config configs/shapes_tiny.py --workdir runs/tiny --config.train.steps=50
"""
from arm_jax.config import base_config


def get_config():
  c = base_config()
  c.name = "shapes_tiny"
  # 64x64 images, 8x8 patches -> 8x8 grid of codes; FSQ 8*5*5*5 = 1000 codes.
  c.data.image_size = 64
  c.tokenizer.patch_size = 8
  c.model.max_grid = 8
  c.model.text_vocab_size = 512
  c.model.image_vocab_size = 1000
  # ~4M-parameter decoder: what this CPU trains to useful quality in minutes.
  c.model.d_model = 256
  c.model.n_layers = 4
  c.model.n_heads = 4
  c.model.n_kv_heads = 2
  c.model.head_dim = 64
  c.model.d_ff = 768
  c.model.max_seq_len = 192
  c.train.seq_len = 176
  c.train.batch_size = 32
  c.train.steps = 600
  c.train.lr = 1e-3
  return c
