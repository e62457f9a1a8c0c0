"""Understanding items (POPE subsets, choice, counting, colour, shape, position), answer parsing
and POPE's metrics."""
import pytest

from arm_jax.eval import understanding as und
from arm_jax.eval.reference_models import wrong_answer


def _asked(item) -> tuple[str, str]:
  """(colour, shape) a POPE question asks about."""
  color, shape = item.question.split("is there a ")[1].split(" in the image")[0].split()
  return color, shape


def test_items_cycle_kinds_and_pope_labels_are_true_of_the_scene():
  items = und.make_items(11, 60, grid=3, max_objects=3)
  assert [i.kind for i in items[:len(und.KINDS)]] == list(und.KINDS)
  pope = [i for i in items if i.kind.startswith("pope_")]
  for item in pope:
    present = _asked(item) in {(o.color, o.shape) for o in item.scene.objects}
    assert item.answer == ("yes" if present else "no")
  assert {i.answer for i in pope} == {"yes", "no"}


def test_adversarial_negatives_share_an_attribute_and_popular_ones_are_frequent():
  items = und.make_items(2, 200, grid=3, max_objects=3)
  negatives = [i for i in items if i.answer == "no"]
  counts = {}
  for item in items:
    for o in item.scene.objects:
      counts[(o.color, o.shape)] = counts.get((o.color, o.shape), 0) + 1
  for item in negatives:
    if item.kind == "pope_adversarial":
      color, shape = _asked(item)
      assert any(o.color == color or o.shape == shape for o in item.scene.objects)

  def mean_count(kind):
    pairs = [_asked(i) for i in negatives if i.kind == kind]
    return sum(counts.get(p, 0) for p in pairs) / len(pairs)

  assert mean_count("pope_popular") > mean_count("pope_random")


@pytest.mark.parametrize("text,expected", [
    ("yes", "yes"), ("No.", "no"), ("Yes. No other shapes.", "yes"), ("no", "no"),
    ("yes, there is no doubt", "yes"),
    ("There is not.", ""), ("", ""), ("red", ""), ("yesterday", "")])   # no answer: wrong
def test_yes_no_is_strict(text, expected):
  assert und.parse_yes_no(text) == expected


def test_an_answer_that_is_neither_yes_nor_no_is_wrong_either_way():
  m = und.pope_metrics(["yes", "no"], ["", ""])
  assert m["accuracy"] == 0.0 and m["f1"] == 0.0 and m["yes_ratio"] == 0.0


@pytest.mark.parametrize("kind,answer,given,ok", [
    ("color", "red", "Red.", True), ("color", "red", "a red one", False),
    ("position", "top left", "top left", True), ("position", "top left", "top", False),
    ("shape", "circle", "circle", True), ("shape", "circle", "square", False)])
def test_colour_shape_and_position_need_the_exact_words(kind, answer, given, ok):
  item = und.Item(0, None, "q", answer, kind)
  assert und.is_correct(item, given) is ok


@pytest.mark.parametrize("text,expected", [
    ("b", "b"), ("(c)", "c"), ("D.", "d"), ("b) blue", "b"), ("blue", "b"), ("purple", ""),
    ("e", ""), ("the answer is", "")])
def test_choice_parsing(text, expected):
  assert und.parse_choice(text, ("red", "blue", "white", "green")) == expected


@pytest.mark.parametrize("text,expected", [("two", 2), ("2", 2), ("there are zero.", 0),
                                           ("many", None)])
def test_count_parsing(text, expected):
  assert und.parse_count(text) == expected


def test_pope_metrics_by_hand():
  labels = ["yes", "yes", "no", "no", "no"]
  preds = ["yes", "no", "yes", "no", "no"]
  m = und.pope_metrics(labels, preds)
  assert m["accuracy"] == pytest.approx(3 / 5)
  assert m["precision"] == pytest.approx(1 / 2) and m["recall"] == pytest.approx(1 / 2)
  assert m["f1"] == pytest.approx(1 / 2) and m["yes_ratio"] == pytest.approx(2 / 5)


def test_summary_separates_right_and_wrong_answers():
  items = und.make_items(3, 25, grid=3, max_objects=3)
  right = und.summarize(items, [i.answer for i in items])
  wrong = und.summarize(items, [wrong_answer(i) for i in items])
  assert right["accuracy"] == 1.0 and right["pope_f1"] == 1.0
  assert wrong["accuracy"] == 0.0 and wrong["pope_f1"] == 0.0
  assert set(right["kinds"]) == set(und.KINDS)
  assert set(right["pope"]) == set(und.POPE_SUBSETS)
