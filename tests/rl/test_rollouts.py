import numpy as np

from arm_jax.model.vocab import VocabLayout
from arm_jax.rl.rollouts import assemble, left_pad

V = VocabLayout(text_size=20, max_grid=2, codebook_size=10)


def test_sampler_rows_are_left_padded():
  tokens, mask = left_pad([np.array([1, 2, 3]), np.array([4])], 4, V.pad)
  np.testing.assert_array_equal(tokens, [[V.pad, 1, 2, 3], [V.pad, V.pad, V.pad, 4]])
  np.testing.assert_array_equal(mask, [[0, 1, 1, 1], [0, 0, 0, 1]])


def test_loss_batch_is_right_padded_and_masks_only_generated_codes():
  h = [V.bos, 5, V.boi, V.height_token(1), V.width_token(2)]
  rows = [np.array(h, np.int32), np.array(h[:1] + [6, 7] + h[1:], np.int32)]
  codes = V.image_offset + np.array([[3, 4], [5, 6]])
  new = np.concatenate([codes, np.full((2, 1), V.eoi)], axis=1)      # 2 codes then <eoi>
  out = assemble(V, rows, new, np.array([0.7, 1.0], np.float32), length=8)
  assert out["tokens"].shape == (2, 11) and out["loss_mask"].shape == (2, 10)
  np.testing.assert_array_equal(out["tokens"][0], h + list(new[0]) + [V.pad] * 3)
  np.testing.assert_array_equal(out["tokens"][1], list(rows[1]) + list(new[1]) + [V.pad])
  # position t predicts tokens[t+1]: the two codes of row 0 sit at 5, 6 -> mask 4, 5 (not <eoi>)
  np.testing.assert_array_equal(np.nonzero(out["loss_mask"][0])[0], [4, 5])
  np.testing.assert_array_equal(np.nonzero(out["loss_mask"][1])[0], [6, 7])
  t, m = out["tokens"], out["loss_mask"].astype(bool)
  assert V.is_image(t[:, 1:][m]).all() and m.sum() == 4
