"""The RL stage schedule (`rl.stages`) and the study's runs derived from it.

`rl.stages` is ((kind, iterations), ...) with kind t2i | edit | joint; the paper's is
(("t2i", 280), ("edit", 100), ("joint", 200)). Stage k starts from stage k-1's policy (the
first from the pretrained checkpoint) and is its own GRPO run: fresh optimizer, and the policy
it starts from as its frozen KL reference.
"""
from __future__ import annotations

import dataclasses

from arm_jax.errors import UserError

KINDS = {"t2i": ("t2i",), "edit": ("edit",), "joint": ("t2i", "edit")}
LABELS = {"t2i": "T2I", "edit": "Edit", "joint": "joint"}


@dataclasses.dataclass(frozen=True)
class StagePlan:
  index: int        # 1-based position in rl.stages
  kind: str         # t2i | edit | joint
  steps: int        # RL iterations (each: one rollout batch, rl.updates_per_batch updates)

  @property
  def name(self) -> str:
    """Checkpoint / metrics name, e.g. 'rl_1_t2i'."""
    return f"rl_{self.index}_{self.kind}"

  @property
  def tasks(self) -> tuple[str, ...]:
    return KINDS[self.kind]


def parse_stages(stages) -> list[StagePlan]:
  """rl.stages -> validated StagePlans (one-line UserError on a bad schedule)."""
  plans = []
  for i, item in enumerate(stages, 1):
    if not isinstance(item, (tuple, list)) or len(item) != 2:
      raise UserError(f"rl.stages entry {item!r} must be (kind, iterations), e.g. ('t2i', 280)")
    kind, steps = item
    if kind not in KINDS:
      raise UserError(f"rl.stages entry {i} has kind '{kind}'; use one of {', '.join(KINDS)}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
      raise UserError(f"rl.stages entry {i} ('{kind}') needs a whole number of iterations >= 1, "
                      f"got {steps!r}")
    plans.append(StagePlan(i, kind, steps))
  if not plans:
    raise UserError("rl.stages is empty; give at least one stage, e.g. (('t2i', 30),)")
  return plans


def split_prompts(kind: str, n: int) -> list[tuple[str, int]]:
  """Prompts per task in one iteration: joint stages split n evenly (T2I gets the odd one)."""
  tasks = KINDS[kind]
  if n < len(tasks):
    raise UserError(f"rl.prompts_per_step={n} is too few for a {kind} stage; use >= {len(tasks)}")
  base, extra = divmod(n, len(tasks))
  return [(t, base + (1 if i < extra else 0)) for i, t in enumerate(tasks)]


def run_label(plans: list[StagePlan]) -> str:
  """['t2i'] -> 'T2I-RL'; ['t2i', 'edit'] -> 'T2I->Edit'; [] -> 'SFT' (Table 8's row names)."""
  if not plans:
    return "SFT"
  if len(plans) == 1:
    return f"{LABELS[plans[0].kind]}-RL"
  return "->".join(LABELS[p.kind] for p in plans)


def study_runs(plans: list[StagePlan]) -> dict[str, list[StagePlan]]:
  """Table 8's rows: SFT, each prefix of the schedule, and each single-task stage alone.

  With the paper's schedule: SFT, T2I-RL, T2I->Edit, T2I->Edit->joint, Edit-RL. A stage alone
  keeps its index-free identity: it starts from the pretrained checkpoint.
  """
  runs = {"SFT": []}
  for k in range(1, len(plans) + 1):
    runs[run_label(plans[:k])] = plans[:k]
  for p in plans[1:]:
    if p.kind != "joint":
      alone = [dataclasses.replace(p, index=1)]
      runs.setdefault(run_label(alone), alone)
  return runs
