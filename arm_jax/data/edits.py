"""Edit operations on scenes: recolor, add, remove, move, resize (the editing task's ground truth).

An `Edit` names the object before (`before`, None for add) and after (`after`, None for remove).
`apply_edit` is exact, so the target image of an edit triplet is `render(apply_edit(scene, edit))`
and edit-bench scoring compares a generated image's parsed objects with that scene. All functions
are pure functions of their arguments and an explicit `np.random.Generator`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from arm_jax.data.phrases import article, place, refer
from arm_jax.data.world import COLORS, SHAPES, SIZES, Obj, Scene

EDIT_KINDS = ("recolor", "add", "remove", "move", "resize")


@dataclasses.dataclass(frozen=True)
class Edit:
  kind: str               # one of EDIT_KINDS
  before: Obj | None      # the object edited, as in the source scene (None for add)
  after: Obj | None       # the object in the target scene (None for remove)
  grid: int = 3           # the scene's grid side (names places in instructions)

  def cells(self) -> set[tuple[int, int]]:
    """The (row, col) cells the edit touches: where the object was and where it ends up."""
    return {(o.row, o.col) for o in (self.before, self.after) if o is not None}

  def to_json(self) -> dict:
    return {"kind": self.kind, "grid": self.grid,
            "before": dict(vars(self.before)) if self.before else None,
            "after": dict(vars(self.after)) if self.after else None}

  @staticmethod
  def from_json(d: dict) -> "Edit":
    return Edit(d["kind"], Obj(**d["before"]) if d["before"] else None,
                Obj(**d["after"]) if d["after"] else None, d.get("grid", 3))


def _free_cells(scene: Scene) -> list[tuple[int, int]]:
  taken = scene.cells()
  return [(r, c) for r in range(scene.grid) for c in range(scene.grid) if (r, c) not in taken]


def feasible_kinds(scene: Scene, max_objects: int) -> list[str]:
  """Kinds that make sense here: add/move need a free cell, remove leaves at least one object."""
  n, free = len(scene.objects), bool(_free_cells(scene))
  ok = {"recolor": n >= 1, "add": free and n < max_objects, "remove": n >= 2,
        "move": n >= 1 and free, "resize": n >= 1}
  return [k for k in EDIT_KINDS if ok[k]]


def _pick(rng: np.random.Generator, items):
  return items[int(rng.integers(len(items)))]


def sample_edit(rng: np.random.Generator, scene: Scene, grid: int | None = None, *,
                max_objects: int = 4,
                exclude: frozenset[tuple[str, str]] = frozenset()) -> Edit:
  """A random feasible edit of `scene`; never creates a (colour, shape) pair in `exclude`."""
  grid = scene.grid if grid is None else grid
  scene = Scene(scene.objects, grid)
  kinds = feasible_kinds(scene, max_objects)
  if not kinds:
    raise ValueError(f"no edit fits a scene with {len(scene.objects)} objects on a {grid}x{grid} "
                     f"grid (max_objects={max_objects})")
  kind = _pick(rng, kinds)
  if kind == "add":
    row, col = _pick(rng, _free_cells(scene))
    while True:
      new = Obj(_pick(rng, SHAPES), _pick(rng, list(COLORS)), _pick(rng, SIZES), row, col)
      if (new.color, new.shape) not in exclude:
        return Edit("add", None, new, grid)
  obj = _pick(rng, scene.objects)
  if kind == "remove":
    return Edit("remove", obj, None, grid)
  if kind == "move":
    row, col = _pick(rng, _free_cells(scene))
    return Edit("move", obj, dataclasses.replace(obj, row=row, col=col), grid)
  colors = [c for c in COLORS if c != obj.color and (c, obj.shape) not in exclude]
  if kind == "resize" or not colors:   # no colour left for this shape: resize instead
    other = [s for s in SIZES if s != obj.size]
    return Edit("resize", obj, dataclasses.replace(obj, size=_pick(rng, other)), grid)
  return Edit("recolor", obj, dataclasses.replace(obj, color=_pick(rng, colors)), grid)


def apply_edit(scene: Scene, edit: Edit) -> Scene:
  """The target scene. Raises ValueError if `edit.before` is not in the scene."""
  objects = list(scene.objects)
  if edit.before is not None:
    if edit.before not in objects:
      raise ValueError(f"edit refers to {edit.before}, which is not in the scene")
    objects.remove(edit.before)
  if edit.after is not None:
    objects.append(edit.after)
  return Scene(tuple(sorted(objects, key=lambda o: (o.row, o.col))), scene.grid)


_TEMPLATES = {
    "recolor": ("make the {ref} {color}", "change the color of the {ref} to {color}",
                "turn the {ref} {color}", "paint the {ref} {color}", "recolor the {ref} to {color}"),
    "add": ("add {obj} in {place}", "put {obj} in {place}", "place {obj} in {place}",
            "draw {obj} in {place}"),
    "remove": ("remove the {ref}", "delete the {ref}", "take away the {ref}", "erase the {ref}"),
    "move": ("move the {ref} to {place}", "shift the {ref} to {place}",
             "put the {ref} in {place} instead"),
    "resize": ("make the {ref} {size}", "make the {ref} {comparative}", "{verb} the {ref}"),
}


def edit_instruction(edit: Edit, rng: np.random.Generator, scene: Scene | None = None) -> str:
  """A random phrasing of `edit`, e.g. 'make the red circle blue'.

  With the source `scene`, the edited object is named by a phrase that is unique in it; without,
  by its full description and place (always unique, since objects sit in distinct cells).
  """
  template = _pick(rng, _TEMPLATES[edit.kind])
  fields = {}
  if edit.before is not None:
    b = edit.before
    fields["ref"] = (refer(b, scene, rng) if scene is not None else
                     f"{b.color} {b.shape} in {place(b.row, b.col, edit.grid)}")
  if edit.after is not None:
    a = edit.after
    fields.update(color=a.color, size=a.size, obj=article(a.phrase()),
                  place=place(a.row, a.col, edit.grid),
                  verb="enlarge" if a.size == "large" else "shrink",
                  comparative="bigger" if a.size == "large" else "smaller")
  return template.format(**fields)

