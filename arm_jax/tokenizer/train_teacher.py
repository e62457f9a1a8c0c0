"""Teacher stage: train the mini-SigLIP on shapes-world image-caption pairs (or import one).

    arm-jax train-teacher --config configs/shapes_tiny.py --workdir runs/tiny

Runs through the shared train loop (sharded step, checkpoints, resume, SIGTERM), stage name
"teacher"; hyper-parameters come from config.teacher (steps, batch_size, lr, warmup_steps) over
config.train. With teacher.hf_checkpoint set, the SigLIP weights are imported instead and saved
as the stage's checkpoint, so the tokenizer stage reads both the same way.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from arm_jax import sharding as shd
from arm_jax.tokenizer import data as data_lib
from arm_jax.tokenizer import weights
from arm_jax.tokenizer.losses import sigmoid_loss
from arm_jax.tokenizer.teacher import Siglip, TeacherConfig
from arm_jax.train.loop import Stage, train

STAGE = "teacher"


def teacher_fn(config):
  """rngs -> Siglip for config.teacher."""
  cfg = TeacherConfig.from_config(config)
  return lambda rngs: Siglip(cfg, rngs=rngs)


def teacher_loss(model: Siglip, batch: dict, rng: jax.Array):
  """Sigmoid loss over the batch's (image, text) pairs; metrics: in-batch retrieval accuracy."""
  del rng
  image = model.embed_image(batch["image"])
  text = model.embed_text(batch["text"])
  loss = sigmoid_loss(text, image, model.logit_scale[...], model.logit_bias[...])
  sims = text @ image.T
  target = jnp.arange(sims.shape[0])
  metrics = {"t2i_top1": jnp.mean(sims.argmax(1) == target),
             "i2t_top1": jnp.mean(sims.argmax(0) == target),
             "temperature": jnp.exp(model.logit_scale[...]), "bias": model.logit_bias[...]}
  return loss, metrics


def teacher_stage(config) -> Stage:
  return Stage(name=STAGE, model_fn=teacher_fn(config), loss_fn=teacher_loss,
               tcfg=weights.stage_hparams(config, config.teacher),
               meta={"config": config.to_json()})


def train_teacher(config, workdir: str, *, data_iter=None) -> dict:
  """Trains (or resumes, or imports) the teacher; returns {"steps", "loss"} of the last log."""
  if config.teacher.hf_checkpoint:
    from arm_jax.interop.siglip import import_siglip
    params = import_siglip(config.teacher.hf_checkpoint, TeacherConfig.from_config(config))
    weights.save_params(workdir, STAGE, params, {"source": config.teacher.hf_checkpoint})
    return {"imported": config.teacher.hf_checkpoint}
  stage = teacher_stage(config)
  if data_iter is None:
    tok = data_lib.text_tokenizer(config, workdir)
    data_iter = iter(data_lib.image_text_dataset(
        config, tok, batch_size=stage.tcfg.batch_size, seed=config.train.seed,
        records=data_lib.train_records(config, workdir), process_index=jax.process_index(), process_count=jax.process_count()))
  last = {}
  train(stage, workdir=workdir, mesh=shd.make_mesh(config.mesh), rules=shd.rules_of(config.mesh),
        data_iter=data_iter, on_log=lambda step, values: last.update(values, steps=step))
  return {k: last[k] for k in ("steps", "loss", "t2i_top1") if k in last}


def load_teacher(config, workdir: str) -> Siglip:
  """The trained (or imported) teacher from <workdir>/checkpoints/teacher."""
  fn = teacher_fn(config)
  return weights.model_from_params(fn, weights.load_params(workdir, STAGE, fn,
                                                           command="train-teacher"))
