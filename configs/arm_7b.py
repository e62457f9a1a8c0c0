"""The paper's 7B recipe: Qwen2.5-7B shapes, a ~64K-code FSQ tokenizer, FSDP on a TPU v5p pod.

    arm-jax aot --config configs/arm_7b.py --topology v5p-64
    arm-jax pretrain --config configs/arm_7b.py --workdir gs://BUCKET/arm_7b

Initialise from Qwen2.5-7B with `arm-jax import-hf` first (see README, "Start from Qwen2.5").

Memory on v5p-64 (32 chips, 95 GiB each; `arm-jax aot`, compiled for v5p:2x4x4): the global
batch of 256 x 4096 tokens runs as 4 micro-batches of 2 sequences per chip, 51 GiB per chip.
Measured alternatives: grad_accum=2 needs 94 GiB (too tight), grad_accum=1 does not fit (134 GiB
of temporaries); grad_accum=1 with model.remat=full fits in 65 GiB but recomputes every forward
matmul. On other slices keep 1-2 sequences per chip per micro-batch:
grad_accum = batch_size / (2 * chips), e.g. v5p-128: --config.train.grad_accum=2; and check with
`arm-jax aot --topology ...` (v6e/v5e chips have 32/16 GiB: more chips or remat=full).
"""
from arm_jax.config import base_config


def get_config():
  c = base_config()
  c.name = "arm_7b"
  c.model.text_vocab_size = 152064
  c.model.max_grid = 64
  c.tokenizer.fsq_levels = (8, 8, 8, 5, 5, 5)   # 64,000 codes
  c.model.image_vocab_size = 64000
  c.model.d_model = 3584
  c.model.n_layers = 28
  c.model.n_heads = 28
  c.model.n_kv_heads = 4
  c.model.head_dim = 128
  c.model.d_ff = 18944
  c.model.rope_theta = 1e6
  c.model.max_seq_len = 4096
  c.model.remat = "dots_with_no_batch_dims_saveable"
  c.model.attention = "splash"
  c.data.image_size = 512
  c.tokenizer.patch_size = 16
  c.data.mixture = (("text", 0.05), ("und", 0.10), ("t2i", 0.70), ("interleaved", 0.10),
                    ("web", 0.05))
  c.train.seq_len = 4096
  c.train.batch_size = 256
  c.train.grad_accum = 4        # 2 sequences per chip per micro-batch on v5p-64 (see above)
  c.train.lr = 3e-5
  c.train.warmup_steps = 500
  c.train.steps = 100000
  c.train.ckpt_every = 1000
  # FSDP over every chip; the batch is split over the same axis.
  c.mesh.shape = (1, -1, 1)
  c.rl.group_size = 16
  c.rl.grad_accum = 2           # 128 rollouts per update: 2 per chip per micro-batch on v5p-64
  c.rl.top_k = 1000
  return c
