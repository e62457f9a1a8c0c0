import numpy as np

from arm_jax.data import captions, questions, world
from arm_jax.data.world import Obj, Scene


def _scene():
  return Scene((Obj("circle", "red", "large", 0, 0), Obj("circle", "red", "small", 1, 1),
                Obj("square", "blue", "small", 2, 2)), 3)


def test_full_caption_by_hand():
  assert captions.full_caption(_scene()) == (
      "a large red circle in the top left, a small red circle in the center and "
      "a small blue square in the bottom right.")


def test_counted_style_groups():
  assert captions.all_captions(_scene())["counted"] == "two red circles and a blue square."
  assert captions.all_captions(_scene())["count_first"].startswith("three shapes: ")


def test_caption_styles_vary_and_are_seeded():
  s = _scene()
  got = {captions.caption(s, np.random.default_rng(i)) for i in range(30)}
  assert len(got) >= 4
  assert captions.caption(s, np.random.default_rng(3)) == captions.caption(
      s, np.random.default_rng(3))


def test_answers_are_true_for_the_scene():
  rng = np.random.default_rng(0)
  for _ in range(300):
    s = world.sample_scene(rng, 3, 4)
    qa = questions.sample_qa(s, rng)
    present = {(o.color, o.shape) for o in s.objects}
    if qa.kind == "existence":
      c, sh = qa.question.split("a ", 1)[1].split()[:2]
      sh = sh.rstrip("?")
      assert qa.answer == ("yes" if (c, sh) in present else "no")
    elif qa.kind == "counting" and qa.question == "how many shapes are there?":
      assert qa.answer == ("zero one two three four".split()[len(s.objects)])
    elif qa.kind == "choice":
      truth = qa.choices["abcd".index(qa.answer)]
      assert truth in {o.color for o in s.objects} | {o.shape for o in s.objects}
    elif qa.kind == "position":
      assert qa.answer not in qa.question
      assert qa.answer in {world.position_name(o.row, o.col, 3) for o in s.objects}


def test_existence_is_balanced_and_all_kinds_appear():
  rng = np.random.default_rng(1)
  s = _scene()
  qas = questions.sample_qas(s, rng, 600)
  assert {q.kind for q in qas} == set(questions.QA_KINDS)
  ex = [q.answer for q in qas if q.kind == "existence"]
  assert 0.35 < ex.count("yes") / len(ex) < 0.65


def test_empty_scene_only_asks_existence_and_counting():
  qas = questions.sample_qas(Scene((), 3), np.random.default_rng(0), 50)
  assert {q.kind for q in qas} <= {"existence", "counting"}
  assert all(q.answer in ("no", "zero") for q in qas)


def test_knowledge_caption_names_colors_through_caption_things_only():
  from arm_jax.data import knowledge
  assert set(knowledge.CAPTION_THINGS).isdisjoint(knowledge.TEXT_ONLY_THINGS)
  assert set(knowledge.TEXT_ONLY_THINGS.values()) == set(world.COLORS)   # one per colour
  s = _scene()
  for i in range(20):
    text = captions.knowledge_caption(s, np.random.default_rng(i))
    parts = text.rstrip(".").replace(" and ", ", ").split(", ")
    assert len(parts) == 3
    for part, obj in zip(parts, s.objects):
      thing = part.split(" in the color of ")[1].rsplit(" in ", 1)[0]
      riddle = "a " + part.split(" ", 2)[2].split(" in the color of ")[0]
      assert knowledge.CAPTION_THINGS[thing] == obj.color
      assert knowledge.SHAPE_RIDDLES[riddle] == obj.shape
