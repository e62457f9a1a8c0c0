"""Tokenizer stage: train encoder + quantizer + pixel decoder with the four objectives.

    arm-jax train-tokenizer --config configs/shapes_tiny.py --workdir runs/tiny

loss = w_pixel   * MSE(decoded, image)
     + w_feature * (1 - cos(feature_head(codes), teacher patch features))
     + w_sigmoid * sigmoid_loss(align_head(codes), teacher text embedding of the caption)
     + w_caption * cross-entropy of the captioner writing the full caption from the codes
     (+ w_entropy * the code-entropy regulariser, off by default)
     (+ the VQ codebook/commitment/revive terms when tokenizer.quantizer = vq)

The teacher is frozen: its weights are closed over (replicated on the mesh), never in the train
state, so the optimizer never touches them. A zero weight drops that term and its compute.
Shared train loop, stage name "tokenizer".
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arm_jax import sharding as shd
from arm_jax.errors import UserError
from arm_jax.tokenizer import data as data_lib
from arm_jax.tokenizer import losses, weights
from arm_jax.tokenizer.metrics import psnr
from arm_jax.tokenizer.model import Tokenizer, TokenizerConfig
from arm_jax.tokenizer.teacher import Siglip
from arm_jax.tokenizer.train_teacher import load_teacher, teacher_fn
from arm_jax.tokenizer.vit import pixels_to_unit
from arm_jax.train.loop import Stage, train

STAGE = "tokenizer"
WEIGHTS = ("w_pixel", "w_feature", "w_sigmoid", "w_caption")


def tokenizer_fn(config):
  """rngs -> Tokenizer for config.tokenizer."""
  cfg = TokenizerConfig.from_config(config)
  return lambda rngs: Tokenizer(cfg, rngs=rngs)


def check_weights(loss_weights: dict) -> dict:
  w = {k: float(loss_weights[k]) for k in WEIGHTS}
  if not any(w.values()):
    raise UserError("all tokenizer loss weights are 0; turn on at least one of "
                    + ", ".join(f"tokenizer.{k}" for k in WEIGHTS))
  return w


def make_loss(teacher: Siglip, loss_weights: dict, *, w_entropy: float = 0.0,
              entropy_temperature: float = 0.1):
  """loss_fn(model, batch, rng) for the shared step; `teacher` is frozen and closed over.

  w_entropy > 0 adds the code-entropy regulariser (losses.code_entropy_loss).
  """
  w = check_weights(loss_weights)
  graphdef, teacher_state = nnx.split(teacher)

  def loss_fn(model: Tokenizer, batch: dict, rng: jax.Array):
    t = nnx.merge(graphdef, jax.lax.stop_gradient(teacher_state))
    z = model.latents(batch["image"])
    z_q, codes, aux = model.quantizer(z, rng)
    terms, metrics = dict(aux), {}
    if w_entropy:
      terms["entropy"] = w_entropy * losses.code_entropy_loss(
          model.quantizer.soft_assignment(z, entropy_temperature), codes)
    if w["w_pixel"]:
      recon = model.decode_codes(z_q)
      terms["pixel"] = w["w_pixel"] * losses.pixel_loss(recon, pixels_to_unit(batch["image"]))
      metrics["psnr"] = _psnr(recon, batch["image"])
    if w["w_feature"] or w["w_sigmoid"] or w["w_caption"]:
      sem = model.semantic_features(z_q)
    if w["w_feature"]:
      target = t.patch_features(batch["image"])
      terms["feature"] = w["w_feature"] * losses.cosine_distillation(model.distilled(sem), target)
    if w["w_sigmoid"]:
      text = t.embed_text(batch["text"])
      image = model.embed(sem)
      terms["sigmoid"] = w["w_sigmoid"] * losses.sigmoid_loss(
          text, image, model.align_scale[...], model.align_bias[...])
      metrics["t2i_top1"] = jnp.mean((text @ image.T).argmax(1) == jnp.arange(text.shape[0]))
    if w["w_caption"]:
      ce, acc = losses.caption_loss(model.caption_logits(sem, batch["caption"]),
                                    batch["caption"], batch["caption_mask"])
      terms["caption"] = w["w_caption"] * ce
      metrics["caption_acc"] = acc
    metrics.update(terms)
    metrics["batch_usage"] = _batch_usage(codes, model.quantizer.codebook_size)
    return sum(terms.values()), metrics

  return loss_fn


def _psnr(recon: jax.Array, images: jax.Array) -> jax.Array:
  """Mean PSNR (dB) of the rounded uint8 reconstruction, as the held-out metric measures it."""
  return jnp.mean(psnr(jax.lax.stop_gradient(recon), images))


def _batch_usage(codes: jax.Array, k: int) -> jax.Array:
  used = jnp.bincount(codes.reshape(-1), length=k) > 0
  return jnp.mean(used.astype(jnp.float32))


def tokenizer_stage(config, teacher: Siglip, *, name: str = STAGE,
                    loss_weights: dict | None = None) -> Stage:
  t = config.tokenizer
  lw = loss_weights or {k: t[k] for k in WEIGHTS}
  loss_fn = make_loss(teacher, lw, w_entropy=t.w_entropy,
                      entropy_temperature=t.entropy_temperature)
  return Stage(name=name, model_fn=tokenizer_fn(config), loss_fn=loss_fn,
               tcfg=weights.stage_hparams(config, t), meta={"config": config.to_json()})


def initial_params(config, teacher: Siglip):
  """Fresh tokenizer params, the encoder copied from the teacher's image tower if configured."""
  if not config.tokenizer.init_from_teacher:
    return None
  tok_cfg = TokenizerConfig.from_config(config)
  if (tok_cfg.encoder, config.tokenizer.patch_size) != (teacher.cfg.vision, teacher.cfg.patch_size):
    raise UserError("tokenizer.init_from_teacher needs the encoder shaped like the teacher's "
                    "image tower (d_model, n_layers, n_heads, d_ff, patch_size, dtype); match "
                    "them or set --config.tokenizer.init_from_teacher=false")
  params = nnx.to_pure_dict(nnx.state(tokenizer_fn(config)(nnx.Rngs(config.train.seed))))
  params["encoder"] = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(teacher.vision)))
  return params


def _replicate(module: nnx.Module, mesh) -> nnx.Module:
  graphdef, state = nnx.split(module)
  return nnx.merge(graphdef, jax.device_put(state, shd.replicated(mesh)))


def train_tokenizer(config, workdir: str, *, data_iter=None, name: str = STAGE,
                    loss_weights: dict | None = None) -> dict:
  """Trains (or resumes) the tokenizer; returns the last logged training metrics."""
  check_weights(loss_weights or config.tokenizer)
  mesh, rules = shd.make_mesh(config.mesh), shd.rules_of(config.mesh)
  teacher = _replicate(load_teacher(config, workdir), mesh)
  stage = tokenizer_stage(config, teacher, name=name, loss_weights=loss_weights)
  if data_iter is None:
    tok = data_lib.text_tokenizer(config, workdir)
    data_iter = iter(data_lib.image_text_dataset(
        config, tok, batch_size=stage.tcfg.batch_size, seed=config.train.seed + 1,
        records=data_lib.perception_records(config, workdir), process_index=jax.process_index(),
        process_count=jax.process_count()))
  init = None if weights.latest_step(workdir, name) else initial_params(config, teacher)
  last = {}
  train(stage, workdir=workdir, mesh=mesh, rules=rules, data_iter=data_iter, init_params=init,
        on_log=lambda step, values: last.update(values, steps=step))
  return {k: v for k, v in last.items() if k in ("steps", "loss", "psnr", "batch_usage")}
