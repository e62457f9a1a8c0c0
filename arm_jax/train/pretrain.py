"""AR pretraining: the ARM decoder on the multimodal mixture (understanding, T2I, editing, text).

    arm-jax pretrain --config configs/shapes_tiny.py --workdir runs/tiny
"""
from __future__ import annotations

import os

import jax
from flax import nnx

from arm_jax import sharding as shd
from arm_jax.model.code_init import init_image_codes, init_joint
from arm_jax.model.transformer import Decoder, ModelConfig
from arm_jax.tokenizer.api import load_visual_tokenizer
from arm_jax.tokenizer.code_semantics import code_features, joint_vectors
from arm_jax.tokenizer.train_teacher import load_teacher
from arm_jax.tokenizer.weights import latest_step
from arm_jax.train import flops as flops_lib
from arm_jax.train.loop import Stage, train
from arm_jax.train.step import lm_loss


STAGE = "pretrain"


def decoder_fn(config):
  """rngs -> Decoder for `config.model` (what create_state and importers build)."""
  mcfg = ModelConfig.from_config(config.model)
  return lambda rngs: Decoder(mcfg, rngs=rngs)


def train_iterator(config, workdir: str):
  """The pretraining batches for this process: the synthetic source or the real mixture."""
  index, count = jax.process_index(), jax.process_count()
  t = config.train
  if config.data.dataset == "synthetic":
    from arm_jax.data.synthetic import synthetic_iterator
    vocab = ModelConfig.from_config(config.model).vocab.total_size
    return synthetic_iterator(vocab, t.batch_size, t.seq_len, t.seed, index, count)
  from arm_jax.data.pipeline import make_train_iterator
  data_dir = config.data.data_dir or os.path.join(workdir, "data")
  return make_train_iterator(config, data_dir, os.path.join(workdir, "codes"),
                             process_index=index, process_count=count, seed=t.seed)


def pretrain_stage(config) -> Stage:
  mcfg = ModelConfig.from_config(config.model)
  t = config.train
  tokens = t.batch_size * t.seq_len
  z = t.z_loss
  return Stage(
      name=STAGE, model_fn=decoder_fn(config),
      loss_fn=lambda model, batch, rng: lm_loss(model, batch, rng, z_loss=z), tcfg=t,
      flops_per_step=flops_lib.decoder_flops_per_token(mcfg, t.seq_len) * tokens,
      tokens_per_step=tokens, meta={"config": config.to_json()})


def semantic_init(config, workdir: str, params: dict | None = None) -> dict:
  """Decoder params (fresh, or `params`) whose image-code rows start from what each code draws
  as the frozen teacher sees it (model.image_embed_init='tokenizer'), or whose image-code and
  text rows start from the teacher's shared text-image space ('joint'); model/code_init.py."""
  mcfg = ModelConfig.from_config(config.model)
  vt, teacher = load_visual_tokenizer(config, workdir), load_teacher(config, workdir)
  if params is None:
    params = nnx.to_pure_dict(nnx.state(decoder_fn(config)(nnx.Rngs(config.train.seed))))
  if config.model.image_embed_init == "joint":
    v = mcfg.vocab
    codes, tokens = joint_vectors(vt, teacher, v.text_size, v.eos, v.pad)
    return init_joint(params, codes, tokens, mcfg, config.train.seed)
  return init_image_codes(params, code_features(vt, teacher), mcfg, config.train.seed)


def pretrain(config, workdir: str, *, data_iter=None, init_params=None):
  """Trains (or resumes) to config.train.steps. Returns (state, spec)."""
  mesh = shd.make_mesh(config.mesh)
  rules = shd.rules_of(config.mesh)
  if config.model.image_embed_init != "random" and latest_step(workdir, STAGE) is None:
    init_params = semantic_init(config, workdir, init_params)
  data_iter = train_iterator(config, workdir) if data_iter is None else data_iter
  return train(pretrain_stage(config), workdir=workdir, mesh=mesh, rules=rules,
               data_iter=data_iter, init_params=init_params)


def load_init_params(path: str):
  """Weights written by `arm-jax import-hf` (a pure dict of arrays)."""
  from arm_jax.interop.weights import load_params
  return load_params(path)


def run(config, args) -> int:
  init = load_init_params(args.init) if args.init else None
  pretrain(config, args.workdir, init_params=init)
  return 0
