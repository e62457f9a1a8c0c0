"""The toy recipe on a cell-aligned shapes world: one 16x16 patch per grid cell, so one visual
code can stand for one object. Levers measured in docs/toy_levers.md.

    arm-jax demo --config configs/shapes_cells.py --workdir runs/cells
    make demo CONFIG=configs/shapes_cells.py WORKDIR=runs/cells
"""
from arm_jax.config import load_config


def get_config():
  c = load_config("shapes_tiny")
  c.name = "shapes_cells"
  # 48x48 images, 16x16 patches -> a 3x3 grid of codes, one per cell of the 3x3 world.
  c.data.image_size = 48
  c.data.num_train = 10000
  # The teacher and tokenizer see every colour-shape pair (scenes rendered on the fly); only the
  # AR model's data holds the three pairs out. Trained on the split, the tokenizer merges each
  # unseen pair into a seen one (exact scenes 0.66 -> 0.80, docs/toy_levers.md).
  c.data.perception_data = "world"
  c.teacher.patch_size = 16
  c.teacher.batch_size = 64
  c.tokenizer.patch_size = 16
  c.model.max_grid = 3
  # Image tokens say which cell they fill: at 450 steps, position answers 0.21 -> 0.46, und
  # 0.49 -> 0.53, G_O 0.56 -> 1.93; at 900 steps und 0.60, G_O 3.5 (docs/toy_levers.md).
  c.model.cell_addressed_codes = True
  # Unrolled layer stacks and f32 matmuls are faster on CPUs without bf16 units; measure yours.
  c.model.scan_layers = False
  c.teacher.scan_layers = False
  c.tokenizer.scan_layers = False
  c.model.dtype = "float32"
  # Tokenizer: VQ keeps 36 object kinds on distinct codes where FSQ at the demo's semantic
  # weights merged them; the semantic losses at a tenth of the demo's weights stop pulling
  # different kinds onto one code (held-out exact scenes 0.15 -> 0.70, docs/toy_levers.md).
  c.tokenizer.quantizer = "vq"
  c.tokenizer.vq_codebook_size = 240
  c.tokenizer.w_feature = 0.1
  c.tokenizer.w_sigmoid = 0.02
  c.tokenizer.w_caption = 0.1
  c.tokenizer.w_entropy = 0.0
  c.tokenizer.lr = 2e-3
  # Exact held-out scenes 0.77 at 700 steps (small squares come back as circles), 0.998 at
  # 1000, 1.0 at 1400 (docs/toy_levers.md).
  c.tokenizer.steps = 1000
  c.tokenizer.batch_size = 32
  # AR: short rows, packed, several questions per image; image-code and text rows seeded from the
  # teacher's shared text-image space, so a word starts near the codes it names (GenEval
  # 0.52 -> 0.74, G_O 0.21 -> 0.83 at 450 steps against image rows alone; docs/toy_levers.md).
  c.model.max_seq_len = 96
  c.model.image_embed_init = "joint"
  c.train.seq_len = 64
  c.train.batch_size = 64
  # Edits and GenEval are still rising at 800 steps (G_O 3.5 -> 4.9 at 1300 on the same codes,
  # docs/toy_levers.md); 1400 steps take the time 800 did before the faster train step.
  c.train.steps = 1400
  c.train.lr = 2e-3
  c.data.pack = True
  c.data.und_questions = 4
  c.data.mixture = (("t2i", 0.4), ("und", 0.3), ("edit", 0.25), ("text", 0.05))
  c.eval.num_geneval = 64
  c.eval.num_edit = 48
  c.eval.num_und = 384   # 48 per question kind: per-kind accuracies to about +-0.07
  return c
