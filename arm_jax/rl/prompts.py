"""RL prompt sets: T2I captions (or GenEval-like records, `rl.t2i_prompts`) and edit
instructions from the shapes world, held out from eval.

Prompt j of a batch is a pure function of (rl.prompt_seed, task, the caller's stream key, j)
-- the RL loop passes (seed, stage, iteration) -- so a resumed run draws exactly the prompts it
would have drawn. Scenes come from the training
distribution (no HELD_OUT colour-shape pair, as pretraining saw), and any prompt whose text is
also an eval prompt is redrawn, so RL never trains on what the eval suite measures.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from arm_jax.data import captions, edits, world
from arm_jax.data.formats import edit_prompt, t2i_prompt
from arm_jax.data.shapes_examples import HELD_OUT, WorldParams, sample_split_scene
from arm_jax.errors import UserError
from arm_jax.eval import geneval
from arm_jax.model.vocab import VocabLayout
from arm_jax.rl.rewards import ATTRIBUTES, PromptMeta

# The caption styles RL draws T2I prompts from, and what each pins down (the rest is left to the
# model). Every one names sizes or starts with a count of shapes, which GenEval/WISE-like prompts
# never do, so RL and eval T2I prompts cannot coincide; "counted" ("a red circle.") could.
STYLE_ATTRIBUTES = {
    "list": ATTRIBUTES, "there_is": ATTRIBUTES, "image_of": ATTRIBUTES,
    "count_first": ("shape", "color"), "attributes": ("shape", "color", "size"),
}
_TASK_ID = {"t2i": 0, "edit": 1}
_MAX_REDRAWS = 100

Encode = Callable[[np.ndarray], np.ndarray]   # images [N, H, W, 3] uint8 -> codes [N, h, w]


@dataclasses.dataclass(frozen=True)
class Prompt:
  meta: PromptMeta
  ids: np.ndarray          # int32 [P]: the token prefix, ending <boi> <h_H> <w_W>
  source_image: np.ndarray | None = None   # editing: [H, W, 3] uint8
  # The guidance rows after `ids` (decode/guidance.py): T2I (uncond,), editing (image_only,
  # uncond); used when rollouts sample with guidance (rl.rollout_guidance).
  guidance_ids: tuple[np.ndarray, ...] = ()


def eval_prompt_keys(config) -> frozenset[str]:
  """prompt_key()s of every prompt the eval suite scores (its GenEval, WISE and edit sets)."""
  from arm_jax.eval.sets import build_sets, prompt_keys
  return prompt_keys(build_sets(config))


def prompt_key(meta: PromptMeta) -> str:
  """What makes two prompts the same: a caption; an instruction on a given source scene."""
  if meta.task == "t2i":
    return meta.text
  return f"{captions.full_caption(meta.source)} => {meta.text}"


def _names_held_out(meta: PromptMeta) -> bool:
  """A GenEval-like prompt asking for a colour-shape pair pretraining never saw."""
  return meta.geneval is not None and any(
      (req.get("color"), req["class"]) in HELD_OUT for req in meta.geneval["include"])


class PromptSource:
  """Draws RL prompts for a task; `tokenize(text) -> ids`, `encode` = the visual tokenizer's.

  exclude: prompt_key()s never to draw (the eval suite's prompts).
  """

  def __init__(self, config, vocab: VocabLayout, tokenize: Callable[[str], Sequence[int]],
               encode: Encode, *, exclude: frozenset[str] = frozenset()):
    self.params = WorldParams.from_config(config)
    self.vocab = vocab
    self.tokenize = tokenize
    self.encode = encode
    self.exclude = exclude
    self.seed = config.rl.prompt_seed
    self.t2i_prompts = config.rl.t2i_prompts
    self.max_objects = config.data.max_objects
    self.image_hw = self.params.image_hw((1, 1))
    self.grid_hw = tuple(s // config.tokenizer.patch_size for s in self.image_hw)

  def batch(self, task: str, n: int, stream: Sequence[int] = ()) -> list[Prompt]:
    """n prompts for `task` ("t2i" | "edit"); the same arguments always give the same prompts."""
    if task not in _TASK_ID:
      raise UserError(f"unknown RL task '{task}'; use t2i or edit")
    drafts = [self._draft(task, tuple(stream), j) for j in range(n)]
    if task == "t2i":
      uncond = (t2i_prompt(self.vocab, None, self.grid_hw),)
      return [Prompt(m, t2i_prompt(self.vocab, self.tokenize(m.text), self.grid_hw),
                     guidance_ids=uncond) for m in drafts]
    sources = np.stack([world.render(m.source, *self.image_hw) for m in drafts])
    codes = np.asarray(self.encode(sources))
    uncond = edit_prompt(self.vocab, None, None, self.grid_hw)
    return [Prompt(m, edit_prompt(self.vocab, c, self.tokenize(m.text), self.grid_hw), s,
                   (edit_prompt(self.vocab, c, None, self.grid_hw), uncond))
            for m, c, s in zip(drafts, codes, sources)]

  def _draft(self, task: str, stream: tuple[int, ...], j: int) -> PromptMeta:
    rng = np.random.default_rng([self.seed, _TASK_ID[task], *stream, j])
    for _ in range(_MAX_REDRAWS):
      meta = self._t2i_meta(rng) if task == "t2i" else self._edit_meta(rng)
      if prompt_key(meta) not in self.exclude and not _names_held_out(meta):
        return meta
    raise UserError(f"could not draw an RL {task} prompt outside the eval prompts in "
                    f"{_MAX_REDRAWS} tries; use fewer eval prompts or a bigger world")

  def _t2i_meta(self, rng: np.random.Generator) -> PromptMeta:
    if self.t2i_prompts == "geneval":
      tag = geneval.TAGS[int(rng.integers(len(geneval.TAGS)))]
      record, scene = geneval.sample_metadata(rng, tag, self.params.grid, self.max_objects)
      return PromptMeta("t2i", record["prompt"], scene, ("shape", "color"), geneval=record)
    scene = sample_split_scene(rng, self.params, "train")
    style = sorted(STYLE_ATTRIBUTES)[int(rng.integers(len(STYLE_ATTRIBUTES)))]
    return PromptMeta("t2i", captions.STYLES[style](scene), scene, STYLE_ATTRIBUTES[style])

  def _edit_meta(self, rng: np.random.Generator) -> PromptMeta:
    scene = sample_split_scene(rng, self.params, "train")
    edit = edits.sample_edit(rng, scene, max_objects=self.max_objects, exclude=HELD_OUT)
    text = edits.edit_instruction(edit, rng, scene)
    return PromptMeta("edit", text, edits.apply_edit(scene, edit), ATTRIBUTES, scene, edit)
