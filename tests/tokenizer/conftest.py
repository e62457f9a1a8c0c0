"""Tiny teacher/tokenizer shapes for fast tests: 32x32 images, 4x4 code grid, width 32."""
import pytest

TINY_TOK = [
    "--config.mesh.shape=(1,1,1)", "--config.data.image_size=32",
    "--config.teacher.d_model=32", "--config.teacher.n_layers=1", "--config.teacher.n_heads=2",
    "--config.teacher.d_ff=64", "--config.teacher.text_layers=1",
    "--config.teacher.text_len=16", "--config.teacher.dtype='float32'",
    "--config.teacher.batch_size=8", "--config.teacher.steps=2",
    "--config.teacher.warmup_steps=1",
    "--config.tokenizer.d_model=32", "--config.tokenizer.n_layers=1",
    "--config.tokenizer.n_heads=2", "--config.tokenizer.d_ff=64",
    "--config.tokenizer.decoder_layers=1", "--config.tokenizer.semantic_layers=1",
    "--config.tokenizer.caption_layers=1", "--config.tokenizer.dtype='float32'",
    "--config.tokenizer.batch_size=8", "--config.tokenizer.steps=2",
    "--config.tokenizer.warmup_steps=1", "--config.train.log_every=1",
    "--config.train.async_ckpt=false",
]


@pytest.fixture(scope="session")
def tiny_tok():
  return list(TINY_TOK)
