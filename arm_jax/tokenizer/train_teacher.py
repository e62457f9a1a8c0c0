"""Teacher stage: train the mini-SigLIP on shapes-world image-caption pairs (or import one).

    arm-jax train-teacher --config configs/shapes_tiny.py --workdir runs/tiny

Runs through the shared train loop (sharded step, checkpoints, resume, SIGTERM), stage name
"teacher"; hyper-parameters come from config.teacher (steps, batch_size, lr, warmup_steps) over
config.train. With teacher.hf_checkpoint set, the SigLIP weights are imported instead and saved
as the stage's checkpoint, so the tokenizer stage reads both the same way.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from arm_jax import sharding as shd
from arm_jax.tokenizer import data as data_lib
from arm_jax.tokenizer import weights
from arm_jax.tokenizer.losses import sigmoid_loss
from arm_jax.tokenizer.teacher import Siglip, TeacherConfig, l2_normalize
from arm_jax.train.loop import Stage, train

STAGE = "teacher"
CENTRE_BATCHES = 8   # training batches whose mean features are folded into the final teacher


def teacher_fn(config):
  """rngs -> Siglip for config.teacher."""
  cfg = TeacherConfig.from_config(config)
  return lambda rngs: Siglip(cfg, rngs=rngs)


def teacher_loss(model: Siglip, batch: dict, rng: jax.Array, *, center: bool = False):
  """Sigmoid loss over the batch's (image, text) pairs; metrics: in-batch retrieval accuracy.

  center: subtract each tower's batch-mean pooled feature before normalising. From a small
  init both towers map every input to nearly the same direction (mean pairwise cosine 0.99 on
  shapes-world batches) and the loss sits on its collapsed plateau for hundreds of steps;
  centred, only what tells the inputs apart is compared. `fold_centres` then bakes the mean
  into the biases, so the saved teacher is a plain SigLIP.
  """
  del rng
  image, text = model.image_features(batch["image"]), model.text(batch["text"])
  if center:
    image = image - jnp.mean(image, axis=0, keepdims=True)
    text = text - jnp.mean(text, axis=0, keepdims=True)
  image, text = l2_normalize(image), l2_normalize(text)
  loss = sigmoid_loss(text, image, model.logit_scale[...], model.logit_bias[...])
  sims = text @ image.T
  target = jnp.arange(sims.shape[0])
  metrics = {"t2i_top1": jnp.mean(sims.argmax(1) == target),
             "i2t_top1": jnp.mean(sims.argmax(0) == target),
             "temperature": jnp.exp(model.logit_scale[...]), "bias": model.logit_bias[...]}
  return loss, metrics


def fold_batch_centres(params, spec, next_batch, batches: int = CENTRE_BATCHES):
  """params with the mean pooled image/text features over `batches` training batches folded
  into the towers' last biases (Siglip.fold_centres): what a centred loss trained."""
  @jax.jit
  def means(p, batch):
    model = spec.model(p)
    return (jnp.mean(model.image_features(batch["image"]), axis=0),
            jnp.mean(model.text(batch["text"]), axis=0))
  sums = [means(params, next_batch()) for _ in range(batches)]
  image, text = (jnp.mean(jnp.stack(x), axis=0) for x in zip(*sums))
  model = spec.model(params)
  model.fold_centres(image, text)
  return nnx.to_pure_dict(nnx.state(model))


def teacher_stage(config) -> Stage:
  center = config.teacher.center
  return Stage(name=STAGE, model_fn=teacher_fn(config),
               loss_fn=functools.partial(teacher_loss, center=center),
               tcfg=weights.stage_hparams(config, config.teacher),
               meta={"config": config.to_json()},
               finalize=fold_batch_centres if center else None)


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
        records=data_lib.perception_records(config, workdir), process_index=jax.process_index(),
        process_count=jax.process_count()))
  last = {}
  train(stage, workdir=workdir, mesh=shd.make_mesh(config.mesh), rules=shd.rules_of(config.mesh),
        data_iter=data_iter, on_log=lambda step, values: last.update(values, steps=step))
  return {k: last[k] for k in ("steps", "loss", "t2i_top1") if k in last}


def load_teacher(config, workdir: str) -> Siglip:
  """The trained (or imported) teacher from <workdir>/checkpoints/teacher."""
  fn = teacher_fn(config)
  return weights.model_from_params(fn, weights.load_params(workdir, STAGE, fn,
                                                           command="train-teacher"))
