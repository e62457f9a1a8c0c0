"""Configs: one documented base, small per-recipe files over it, command-line overrides, validation.

A recipe is a Python file with `get_config()` returning a ConfigDict (see configs/). Every key a
recipe or the command line may set exists in `base_config()` below, so a typo is caught at load
time with the closest valid key named, instead of silently training the wrong thing.

    cfg = load_config("configs/shapes_tiny.py", ["--config.train.steps=100"])
"""
from __future__ import annotations

import ast
import difflib
import importlib.util
import os
from typing import Any, Iterable

import ml_collections as mc

from arm_jax.errors import UserError


class ConfigError(UserError, ValueError):
  """A config problem, reported as one line that says what to change."""


# ---------------------------------------------------------------------------------------------
# The base: every key, with its default. Sections belong to the package of the same name.
# ---------------------------------------------------------------------------------------------

def _mesh() -> mc.ConfigDict:
  return mc.ConfigDict(dict(
      # Mesh axes and their sizes; -1 takes the devices left over (exactly one axis may be -1).
      axes=("data", "fsdp", "tensor"),
      shape=(-1, 1, 1),
      # Logical axis name -> mesh axis (or tuple of axes, or None = replicated). Model code names
      # only logical axes; changing parallelism is an edit here.
      rules=(
          # parameters
          ("embed", "fsdp"),
          ("mlp", "tensor"),
          ("heads", "tensor"),
          ("kv_heads", "tensor"),
          ("vocab", "tensor"),
          ("image_vocab", "tensor"),
          ("layers", None),
          ("norm", None),
          # activations (and input batches)
          ("batch", ("data", "fsdp")),
          ("length", None),
          ("act_embed", None),
          ("act_heads", "tensor"),
          ("act_kv_heads", "tensor"),
          ("act_mlp", "tensor"),
          ("act_vocab", "tensor"),
          ("head_dim", None),
      ),
  ))


def _model() -> mc.ConfigDict:
  return mc.ConfigDict(dict(
      text_vocab_size=512,      # text tokenizer size (sentencepiece / tokenizer.json); Qwen2.5: 152064
      max_grid=8,               # shape tokens <h_1..h_max>, <w_1..w_max>: any grid up to this side
      image_vocab_size=1000,    # number of visual codes; must equal the visual tokenizer's codebook
      # Image ids name their grid cell too: id = image_offset + cell * image_vocab_size + code
      # (max_grid**2 cells). Embedding = code row + cell row, logit = code logit + cell logit,
      # so a code's meaning stays shared; exported to HF as max_grid**2 materialised copies.
      # Under RoPE a small model only sees where a code sits relative to the question's words.
      cell_addressed_codes=False,
      d_model=256,
      n_layers=4,
      n_heads=4,
      n_kv_heads=2,
      head_dim=64,
      d_ff=768,
      rope_theta=10000.0,
      qkv_bias=True,            # Qwen2 puts a bias on q, k, v projections
      norm_eps=1e-6,
      tie_embeddings=False,
      max_seq_len=256,
      init_std=0.02,
      # Image-code rows of a fresh decoder (embedding and image head): random, or 'tokenizer':
      # what each code draws as the frozen teacher sees it (tokenizer/code_semantics.py), so
      # codes that share a colour or shape start out related; or 'joint': codes and text
      # tokens from the teacher's shared text-image space, so words start related to the codes
      # they name (seeds the text rows too).
      image_embed_init="random",
      dtype="bfloat16",         # compute dtype of matmuls and activations
      param_dtype="float32",    # master weights
      # Remat policy for each block: none | full | dots_saveable | dots_with_no_batch_dims_saveable
      remat="none",
      # Run the layer stack with lax.scan (compile time flat in depth); False unrolls it, which
      # XLA's CPU backend trains ~1.4x faster for a few small layers (the toy recipe).
      scan_layers=True,
      # Attention kernel: xla (CPU/any) | cudnn (GPU) | splash (TPU Pallas); cached decode uses xla.
      attention="xla",
  ))


def _train() -> mc.ConfigDict:
  return mc.ConfigDict(dict(
      seed=0,
      steps=200,
      batch_size=32,            # global batch, sequences per optimizer step
      grad_accum=1,             # micro-batches per step (batch_size must divide by it)
      seq_len=128,
      lr=1e-3,
      end_lr_factor=0.1,        # cosine decays to lr * end_lr_factor
      warmup_steps=20,
      weight_decay=0.1,
      b1=0.9,
      b2=0.95,
      clip_norm=1.0,
      z_loss=0.0,               # weight of log(Z)^2, stabilises large-vocab logits
      max_nan_steps=5,          # consecutive non-finite steps are skipped; halt after this many
      log_every=10,
      ckpt_every=100,
      keep_ckpts=3,
      async_ckpt=True,
  ))


# Sequence formats a data.mixture may name (arm_jax/data/formats.py): text->image, image->text,
# editing, text-only, several caption/image pairs per document, pairs from data.web_dataset.
DATA_FORMATS = ("t2i", "und", "edit", "text", "interleaved", "web")


def _data() -> mc.ConfigDict:
  return mc.ConfigDict(dict(
      dataset="shapes_world",   # a tfds builder name; shapes_world is built in; synthetic = test source
      data_dir="",              # '' -> <workdir>/data
      image_key="image",        # feature keys for plugging in another tfds dataset by name
      text_key="caption",
      # 'web' rows: image-text pairs of this tfds dataset ('' -> pairs of data.dataset).
      web_dataset="",
      web_image_key="image",
      web_text_key="text",
      image_size=64,
      aspect_ratios=((1, 1),),  # (h, w) ratios to render; images are image_size on the long side
      grid=3,                   # objects sit on a grid x grid layout
      max_objects=3,
      num_train=20000,
      num_validation=1000,
      num_test=1000,
      seed=0,
      # What the teacher and the tokenizer train on: 'train', the built train split (the
      # held-out colour-shape pairs excluded), or 'world', shapes-world scenes rendered on the
      # fly with every pair, as perception models are trained on broad data of their own. The
      # AR model's data keeps the pairs out either way, so held-out prompts still test it.
      perception_data="train",
      text_tokenizer="",        # '' -> sentencepiece trained on the corpus; or a tokenizer.json
      # Format mixture weights, formats from DATA_FORMATS (the paper's 7B mix: configs/arm_7b.py).
      mixture=(("t2i", 0.5), ("und", 0.2), ("edit", 0.2), ("text", 0.1)),
      # A curriculum: the first warmup_steps batches come from warmup_mixture (same form as
      # mixture), then data.mixture from its own start; 0 = data.mixture throughout.
      warmup_mixture=(),
      warmup_steps=0,
      # Per-format weights on the loss of a format's target tokens, ((format, weight), ...);
      # formats not named weigh 1. Unlike the mixture it costs no extra tokens: an und row
      # has a few answer tokens where a T2I row has a whole image of targets.
      loss_weights=(),
      cond_dropout=0.1,         # caption/instruction dropped -> learns the unconditional for CFG
      # Fill each training row with as many sequences of its format as fit, each its own
      # attention segment with positions from 0 (short image sequences otherwise leave most of
      # a row as padding).
      pack=False,
      und_questions=1,          # questions (and answers) about one image per und sequence
      worker_count=0,           # grain worker processes (0 = in the main process)
      # Records (captions, questions, objects; no images) kept in memory after their first
      # read when the codes are precomputed, as pretraining reads them; 0 = parse every read.
      memo_records=100_000,
      prefetch=2,
      shuffle=True,
  ))


def _teacher() -> mc.ConfigDict:
  return mc.ConfigDict(dict(
      # mini-SigLIP: ViT image tower (MAP-pooled) + text tower of the same width; the image
      # embedding is d_model wide, as in SigLIP.
      patch_size=8,
      d_model=128,
      n_layers=3,
      n_heads=4,
      d_ff=512,
      text_layers=2,
      text_len=32,              # captions are padded/truncated to this many tokens (SigLIP style)
      vocab_size=0,             # text tower rows; 0 = the multimodal text ids + specials
      # Pair each training scene with a twin differing only in shapes (a hard negative), so the
      # contrastive losses must see shape, not only colour and place.
      shape_twins=True,
      # Train on batch-centred embeddings, then fold the mean into the towers' last biases
      # (train_teacher.teacher_loss): from scratch, uncentred towers start collapsed (pairwise
      # cosine 0.99) and sat near chance for the demo's whole budget.
      center=True,
      dtype="float32",          # matmul dtype (params, LayerNorm stay float32); bf16 on TPU/GPU
      scan_layers=True,         # as model.scan_layers: False unrolls the towers' layers
      steps=600,
      batch_size=64,
      lr=1e-3,
      warmup_steps=50,
      hf_checkpoint="",         # a SigLIP / SigLIP2 safetensors dir to import instead of training
  ))


def _tokenizer() -> mc.ConfigDict:
  return mc.ConfigDict(dict(
      quantizer="fsq",          # fsq | vq
      fsq_levels=(8, 5, 5, 5),  # product = codebook size (1000); the 7B recipe uses ~64K
      vq_codebook_size=1024,
      vq_dim=8,
      vq_commitment=0.25,
      vq_restart_dead=True,     # pull codes unused in a batch onto their nearest input (revive)
      patch_size=8,             # image_size / patch_size = grid side
      d_model=128,              # encoder, pixel decoder, semantic branch and captioner width
      n_layers=3,               # encoder blocks (same shape as the teacher's to start from it)
      n_heads=4,
      d_ff=512,
      decoder_layers=3,         # pixel decoder blocks
      semantic_layers=1,        # blocks between the codes and the feature/align heads
      caption_layers=2,         # the captioner's causal blocks
      dtype="float32",
      scan_layers=True,         # as model.scan_layers
      init_from_teacher=True,
      # The four objectives' weights (the paper: caption 1, pixel 5, sigmoid 5, feature 1).
      w_pixel=5.0,
      w_feature=1.0,
      w_sigmoid=5.0,
      w_caption=1.0,
      # Code-entropy regulariser (MAGVIT-v2's): per-token entropy minus the entropy of
      # the batch's frequency-balanced code distribution (losses.code_entropy_loss); spreads
      # content over unused codes. Not in the paper: 0 = off.
      w_entropy=0.0,
      entropy_temperature=0.1,  # softness of the assignment, in squared distances (FSQ: level
                                # spacings; VQ: between unit vectors)
      steps=1500,
      batch_size=64,
      lr=1e-3,
      warmup_steps=50,
      # tokenizer-ablation: named loss subsets (each: the weights that stay on) and steps per run
      ablation=(("pixel", ("w_pixel",)),
                ("pixel+feature", ("w_pixel", "w_feature")),
                ("pixel+feature+sigmoid", ("w_pixel", "w_feature", "w_sigmoid")),
                ("all four", ("w_pixel", "w_feature", "w_sigmoid", "w_caption"))),
      ablation_steps=0,         # 0 = tokenizer.steps
  ))


def _decode() -> mc.ConfigDict:
  return mc.ConfigDict(dict(
      # Sampling of image codes (generate, edit); per-row knobs, so changing them never recompiles.
      temperature=1.0,          # 0 = greedy
      top_k=0,                  # 0 = off
      top_p=1.0,
      cfg_scale=1.5,            # T2I classifier-free guidance (1 = conditional only)
      edit_text_scale=1.5,      # editing: text guidance
      edit_image_scale=1.25,    # editing: image guidance
      answer_temperature=0.0,   # understanding answers (0 = greedy)
      max_new_tokens=32,        # text answers
      max_prompt_chars=2000,    # longer captions/instructions/questions are refused
      cache_dtype="bfloat16",   # KV cache dtype (bfloat16 halves its memory; float32 is exact)
      # Static shapes: prompts are left-padded to a length bucket (capped by model.max_seq_len)
      # and batches padded to a batch bucket, so each bucket compiles once.
      length_buckets=(32, 64, 128, 256),
      batch_buckets=(1, 8, 16, 64),
  ))


def _rl() -> mc.ConfigDict:
  return mc.ConfigDict(dict(
      # GRPO (arm_jax/rl/grpo.py); symbols as in the GRPO paper.
      group_size=8,             # G: rollouts per prompt (the paper: 16)
      prompts_per_step=8,       # prompts per RL iteration (joint stages: half T2I, half editing)
      beta=0.01,                # KL weight to the frozen reference (k3 estimator)
      clip_eps=0.2,             # epsilon of the clipped ratio
      updates_per_batch=2,      # mu: optimizer steps on each rollout batch
      advantage="grpo",         # grpo | dr_grpo | rloo (rl/advantages.py registry)
      # Editing tokens also get this times the advantage of the scene cell they draw (kept
      # object intact / requested change made, normalised over the group; rl/credit.py).
      # 0 = plain GRPO: one advantage per sample.
      cell_credit=0.0,
      lr=1e-5,                  # constant after warmup; other AdamW settings from `train`
      warmup_steps=0,           # in RL iterations
      grad_accum=1,
      # T2I prompts: 'captions' (the training captions' styles, which name every object) or
      # 'geneval' (GenEval's templates: single/two objects, counts, colours, positions, colour
      # attribution; scored by GenEval's rule). Either way no eval prompt and no held-out
      # colour-shape pair is drawn.
      t2i_prompts="captions",
      # Rollouts: sampling knobs per task.
      t2i_temperature=0.7,
      edit_temperature=1.0,
      top_k=1000,
      # Sample rollouts with decode's guidance scales, as the eval samples, instead of from the
      # conditional model alone; the loss still scores the conditional model (rl/rollouts.py).
      rollout_guidance=False,
      # (reward name, weight): each row's reward is the weighted mean of those that apply to
      # its task (rl/rewards.py registry; register your own there). Editing weighs consistency
      # (the edit itself) over adherence, which an unedited copy of the source mostly satisfies.
      rewards=(("quality", 0.2), ("adherence", 1.0), ("consistency", 2.0)),
      # Python modules imported before rl.rewards is read, so rewards they register (with
      # arm_jax.rl.rewards.register_reward) can be named there from the command line.
      reward_modules=(),
      # Stage schedule: (t2i | edit | joint, RL iterations); the paper: T2I 280 -> edit 100 ->
      # joint 200. Each stage starts from the previous one's policy.
      stages=(("t2i", 280), ("edit", 100), ("joint", 200)),
      seed=0,                   # rollout sampling and prompt order
      prompt_seed=7,            # the RL prompt stream (redrawn where it meets an eval prompt)
      log_every=1,              # in RL iterations
      ckpt_every=10,
      # rl-study: the same schedule from the same pretrained checkpoint, once per seed.
      seeds=(0, 1, 2),
  ))


def _eval() -> mc.ConfigDict:
  return mc.ConfigDict(dict(
      seed=1234,
      num_geneval=96,
      num_wise=48,
      num_edit=64,
      num_und=128,
      samples_per_prompt=1,
  ))


def _interop() -> mc.ConfigDict:
  return mc.ConfigDict(dict(
      # New vocabulary rows on import (specials, image codes, the image head) start at the mean
      # of the checkpoint's rows plus seeded noise of this std, as a fraction of the rows' std.
      init_seed=0,
      init_noise=0.1,
      export_dtype="",          # dtype of exported tensors: '' = model.param_dtype, or bfloat16...
      shard_mb=4096.0,          # largest safetensors file written, MB (import output and export)
  ))


def base_config() -> mc.ConfigDict:
  """Every key any recipe may set, with its default."""
  return mc.ConfigDict(dict(
      name="base",
      mesh=_mesh(), model=_model(), train=_train(), data=_data(), teacher=_teacher(),
      tokenizer=_tokenizer(), decode=_decode(), rl=_rl(), eval=_eval(),
      interop=_interop(),
  ))


# ---------------------------------------------------------------------------------------------
# Loading, overriding, validating
# ---------------------------------------------------------------------------------------------

_REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def resolve_config_path(name_or_path: str) -> str:
  """'shapes_tiny' or 'configs/shapes_tiny.py' or any path -> an existing file path."""
  candidates = [name_or_path, os.path.join(_REPO_CONFIGS, name_or_path),
                os.path.join(_REPO_CONFIGS, name_or_path + ".py")]
  for path in candidates:
    if os.path.isfile(path):
      return path
  known = sorted(f[:-3] for f in os.listdir(_REPO_CONFIGS) if f.endswith(".py")) \
      if os.path.isdir(_REPO_CONFIGS) else []
  raise ConfigError(f"config '{name_or_path}' not found; give a path to a .py file with "
                    f"get_config() or one of: {', '.join(known)}")


def flat_keys(cfg: mc.ConfigDict, prefix: str = "") -> list[str]:
  keys = []
  for k, v in cfg.items():
    if isinstance(v, mc.ConfigDict):
      keys += flat_keys(v, f"{prefix}{k}.")
    else:
      keys.append(prefix + k)
  return keys


def _unknown_key(key: str, cfg: mc.ConfigDict) -> ConfigError:
  valid = flat_keys(cfg)
  close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
  hint = f"did you mean '{close[0]}'?" if close else "see configs/ or arm_jax/config.py for valid keys."
  return ConfigError(f"unknown config key '{key}'; {hint}")


def set_value(cfg: mc.ConfigDict, key: str, value: Any) -> None:
  """Sets a dotted key that must already exist in `cfg`, keeping the field's type."""
  node = cfg
  parts = key.split(".")
  for i, part in enumerate(parts):
    if not isinstance(node, mc.ConfigDict) or part not in node:
      raise _unknown_key(key, cfg)
    if i < len(parts) - 1:
      node = node[part]
  old = node[parts[-1]]
  if isinstance(old, mc.ConfigDict):
    raise ConfigError(f"config key '{key}' is a section; set one of its fields, e.g. '{key}."
                      f"{next(iter(old.keys()))}'")
  try:
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
      value = float(value)
    if isinstance(old, tuple) and isinstance(value, list):
      value = tuple(value)
    node[parts[-1]] = value
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config key '{key}' expects {type(old).__name__}, got {value!r}") from e


def parse_value(text: str) -> Any:
  """Command-line literal: numbers, tuples, bools, None, else the raw string."""
  if text in ("true", "false"):
    return text == "true"
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def apply_overrides(cfg: mc.ConfigDict, overrides: Iterable[str]) -> mc.ConfigDict:
  """Applies '--config.a.b=value' (or 'a.b=value') strings in order."""
  for item in overrides:
    body = item[len("--config."):] if item.startswith("--config.") else item
    if "=" not in body:
      raise ConfigError(f"override '{item}' needs a value: --config.{body}=VALUE")
    key, text = body.split("=", 1)
    set_value(cfg, key, parse_value(text))
  return cfg


def _load_recipe(path: str) -> mc.ConfigDict:
  spec = importlib.util.spec_from_file_location(f"arm_jax_recipe_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {path} has no get_config(); define one returning a ConfigDict")
  return module.get_config()


def check_against_base(cfg: mc.ConfigDict) -> None:
  """A recipe may only set keys that exist in the base (typos in recipes are caught too)."""
  base = base_config()
  for key in flat_keys(cfg):
    node = base
    for part in key.split("."):
      if not isinstance(node, mc.ConfigDict) or part not in node:
        raise _unknown_key(key, base)
      node = node[part]


def _check_format_weights(key: str, entries) -> None:
  """((format, weight), ...) as data.mixture and its kin take them."""
  for name, weight in entries:
    if name not in DATA_FORMATS or not weight > 0:
      raise ConfigError(f"{key} entry ({name!r}, {weight}): formats are "
                        f"{', '.join(DATA_FORMATS)}, each with a weight > 0")


def validate(cfg: mc.ConfigDict) -> None:
  """Cross-field checks, each failing with a one-line ConfigError."""
  m, t = cfg.model, cfg.train
  if m.n_heads % m.n_kv_heads:
    raise ConfigError(f"model.n_heads ({m.n_heads}) must be a multiple of model.n_kv_heads "
                      f"({m.n_kv_heads})")
  if m.image_embed_init not in ("random", "tokenizer", "joint"):
    raise ConfigError(f"model.image_embed_init='{m.image_embed_init}'; use 'random', "
                      "'tokenizer' or 'joint'")
  if t.batch_size % t.grad_accum:
    raise ConfigError(f"train.batch_size ({t.batch_size}) must divide by train.grad_accum "
                      f"({t.grad_accum})")
  for key in ("mixture", "warmup_mixture", "loss_weights"):
    _check_format_weights(f"data.{key}", cfg.data[key])
  if cfg.rl.t2i_prompts not in ("captions", "geneval"):
    raise ConfigError(f"rl.t2i_prompts='{cfg.rl.t2i_prompts}'; use 'captions' or 'geneval'")
  if cfg.data.warmup_steps and not cfg.data.warmup_mixture:
    raise ConfigError(f"data.warmup_steps={cfg.data.warmup_steps} needs data.warmup_mixture, "
                      "e.g. \"(('und', 1.0),)\"; or set data.warmup_steps=0")
  if list(cfg.mesh.shape).count(-1) > 1 or len(cfg.mesh.shape) != len(cfg.mesh.axes):
    raise ConfigError(f"mesh.shape {tuple(cfg.mesh.shape)} must give one size per axis "
                      f"{tuple(cfg.mesh.axes)} with at most one -1")
  if cfg.tokenizer.w_entropy and cfg.tokenizer.entropy_temperature <= 0:
    raise ConfigError(f"tokenizer.entropy_temperature ({cfg.tokenizer.entropy_temperature}) "
                      "must be > 0 when tokenizer.w_entropy is on; try 0.1")
  if cfg.data.perception_data not in ("train", "world"):
    raise ConfigError(f"data.perception_data='{cfg.data.perception_data}'; use 'train' or 'world'")
  if cfg.data.perception_data == "world" and cfg.data.dataset != "shapes_world":
    raise ConfigError(f"data.perception_data='world' renders the shapes world, but data.dataset "
                      f"is '{cfg.data.dataset}'; use --config.data.perception_data=train")
  codes = 1
  for level in cfg.tokenizer.fsq_levels:
    codes *= level
  if cfg.tokenizer.quantizer == "vq":
    codes = cfg.tokenizer.vq_codebook_size
  if codes != m.image_vocab_size:
    raise ConfigError(f"model.image_vocab_size ({m.image_vocab_size}) must equal the visual "
                      f"tokenizer's codebook size ({codes}); set one to match the other")


def load_config(name_or_path: str, overrides: Iterable[str] = ()) -> mc.ConfigDict:
  """Recipe file + overrides -> validated, locked ConfigDict."""
  cfg = _load_recipe(resolve_config_path(name_or_path))
  check_against_base(cfg)
  cfg = apply_overrides(cfg, overrides)
  validate(cfg)
  cfg.lock()
  return cfg
