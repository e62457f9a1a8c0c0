"""The real benchmarks' formats, on small hand-made files written the way each benchmark does."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from arm_jax.errors import UserError
from arm_jax.eval import benchmark_files as bf

RED = np.zeros((8, 8, 3), np.uint8) + np.array([220, 40, 40], np.uint8)
BLUE = np.zeros((6, 10, 3), np.uint8) + np.array([50, 90, 235], np.uint8)


def _lines(path, rows):
  with open(path, "w") as f:
    f.write("\n".join(json.dumps(r) for r in rows) + "\n")
  return str(path)


# --- GenEval -----------------------------------------------------------------------------------

GENEVAL_ROWS = [   # hand-made, in the schema of GenEval's evaluation_metadata.jsonl
    {"tag": "single_object", "include": [{"class": "bench", "count": 1}],
     "prompt": "a photo of a bench"},
    {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                    {"class": "dog", "count": 1, "position": ["right of", 0]}],
     "prompt": "a photo of a dog right of a teddy bear"},
    {"tag": "counting", "include": [{"class": "clock", "count": 2}],
     "exclude": [{"class": "clock", "count": 3}], "prompt": "a photo of two clocks"},
]


def test_geneval_metadata_in_and_outputs_layout_out(tmp_path):
  records = bf.read_geneval_metadata(_lines(tmp_path / "evaluation_metadata.jsonl", GENEVAL_ROWS))
  assert records == GENEVAL_ROWS
  out = tmp_path / "outputs"
  bf.write_geneval_outputs(str(out), records, [[RED, BLUE], [RED], [BLUE]])
  # evaluate_images.py: numeric folders, metadata.jsonl read with json.load, samples/NNNN.png.
  assert sorted(os.listdir(out)) == ["00000", "00001", "00002"]
  assert sorted(os.listdir(out / "00000" / "samples")) == ["0000.png", "0001.png"]
  with open(out / "00001" / "metadata.jsonl") as f:
    assert json.load(f) == GENEVAL_ROWS[1]
  assert np.array_equal(np.asarray(Image.open(out / "00000" / "samples" / "0001.png")), BLUE)
  back = bf.read_geneval_outputs(str(out))
  assert [r for r, _ in back] == GENEVAL_ROWS and [len(p) for _, p in back] == [2, 1, 1]


def test_geneval_bad_line_is_named(tmp_path):
  path = tmp_path / "m.jsonl"
  path.write_text(json.dumps(GENEVAL_ROWS[0]) + "\n{not json\n")
  with pytest.raises(UserError, match="line 2 is not JSON"):
    bf.read_geneval_metadata(str(path))
  with pytest.raises(UserError, match="line 1 lacks include"):
    bf.read_geneval_metadata(_lines(tmp_path / "n.jsonl", [{"tag": "x", "prompt": "y"}]))


# --- WISE --------------------------------------------------------------------------------------

WISE_ROWS = [   # hand-made, with the fields of WISE's data/*.json prompt files
    {"prompt_id": 1, "Prompt": "Traditional food of the Mid-Autumn Festival",
     "Explanation": "This refers to mooncakes", "Subcategory": "Festival"},
    {"prompt_id": 2, "Prompt": "The instrument played by a pianist",
     "Explanation": "A piano", "Subcategory": "Arts"},
]


def test_wise_prompts_in_images_by_id_out(tmp_path):
  path = tmp_path / "cultural_common_sense.json"
  path.write_text(json.dumps(WISE_ROWS, indent=2))
  rows = bf.read_wise_prompts(str(path))
  assert rows == WISE_ROWS
  written = bf.write_wise_images(str(tmp_path / "images"), [r["prompt_id"] for r in rows],
                                 [RED, BLUE])
  assert [os.path.basename(p) for p in written] == ["1.png", "2.png"]   # gpt_eval: {id}.png
  scores = tmp_path / "scores.jsonl"
  bf.write_wise_scores(str(scores), [{"prompt_id": 1, "Subcategory": "Festival",
                                      "consistency": 2.0, "realism": 1.0,
                                      "aesthetic_quality": 1.0, "wiscore": 0.85}])
  assert json.loads(scores.read_text()) == {"prompt_id": 1, "Subcategory": "Festival",
                                            "consistency": 2.0, "realism": 1.0,
                                            "aesthetic_quality": 1.0}


def test_wise_wrong_shapes_are_refused(tmp_path):
  path = tmp_path / "w.json"
  path.write_text(json.dumps({"prompt_id": 1}))
  with pytest.raises(UserError, match="JSON list"):
    bf.read_wise_prompts(str(path))
  path.write_text(json.dumps([{"prompt_id": 1, "Prompt": "x"}]))
  with pytest.raises(UserError, match="lacks Explanation, Subcategory"):
    bf.read_wise_prompts(str(path))


# --- GEdit-Bench -------------------------------------------------------------------------------

def _gedit_row(key, image):
  return {"task_type": "color_alter", "key": key, "instruction": "make the car red",
          "instruction_language": "en", "input_image": image, "Intersection_exist": True}


def test_gedit_rows_from_jsonl_and_outputs_layout(tmp_path):
  Image.fromarray(RED).save(tmp_path / "src.png")
  rows = bf.read_gedit_rows(_lines(tmp_path / "gedit.jsonl", [_gedit_row("k1", "src.png")]))
  assert np.array_equal(rows[0]["input_image"], RED)
  edited = bf.write_gedit_outputs(str(tmp_path / "out"), rows, [RED], [BLUE])
  assert edited == [str(tmp_path / "out" / "fullset" / "color_alter" / "en" / "k1.png")]
  source = tmp_path / "out" / "fullset" / "color_alter" / "en" / "k1_SRCIMG.png"
  assert np.array_equal(np.asarray(Image.open(source)), RED)


def test_gedit_rows_from_parquet_with_image_structs(tmp_path):
  pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
  png = tmp_path / "b.png"
  Image.fromarray(BLUE).save(png)
  row = _gedit_row("k2", {"bytes": png.read_bytes(), "path": "b.png"})
  pq.write_table(pa.Table.from_pylist([row]), tmp_path / "train-00000.parquet")
  rows = bf.read_gedit_rows(str(tmp_path / "train-00000.parquet"))
  assert rows[0]["key"] == "k2" and np.array_equal(rows[0]["input_image"], BLUE)


def test_gedit_missing_image_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="cannot read image"):
    bf.read_gedit_rows(_lines(tmp_path / "g.jsonl", [_gedit_row("k", "nowhere.png")]))


# --- POPE --------------------------------------------------------------------------------------

POPE_ROWS = [   # the first two lines of POPE's output/coco/coco_pope_popular.json
    {"question_id": 0, "image": "COCO_val2014_000000548882.jpg", "image_id": 548882,
     "text": "Is there a dining table in the image?", "label": "yes"},
    {"question_id": 1, "image": "COCO_val2014_000000548882.jpg", "image_id": 548882,
     "text": "Is there a chair in the image?", "label": "no"},
]


def test_pope_questions_in_answers_out_line_by_line(tmp_path):
  rows = bf.read_pope_questions(_lines(tmp_path / "coco_pope_popular.json", POPE_ROWS))
  answers = tmp_path / "answers.jsonl"
  bf.write_pope_answers(str(answers), rows, ["Yes, there is.", "No."])
  written = [json.loads(line) for line in answers.read_text().splitlines()]
  # POPE's evaluate.py reads answer['answer'] line by line against the label file's order.
  assert [w["answer"] for w in written] == ["Yes, there is.", "No."]
  assert [w["question_id"] for w in written] == [0, 1]
  with pytest.raises(UserError, match="2 POPE questions"):
    bf.write_pope_answers(str(answers), rows, ["yes"])


def test_pope_labels_must_be_yes_or_no(tmp_path):
  bad = dict(POPE_ROWS[0], label="maybe")
  with pytest.raises(UserError, match="'yes' or 'no'"):
    bf.read_pope_questions(_lines(tmp_path / "p.json", [bad]))
