"""A tiny built shapes world (tens of examples) with stand-in visual codes, shared per session."""
import types

import pytest

from arm_jax.config import load_config
from arm_jax.data import codes as codes_lib
from arm_jax.data.build import build_data
from arm_jax.data.sources import dataset_records

TINY = ["--config.data.num_train=32", "--config.data.num_validation=8",
        "--config.data.num_test=8", "--config.train.batch_size=4"]


def tiny_config(*overrides):
  return load_config("shapes_tiny", TINY + list(overrides))


def stand_in_encoder(config):
  return codes_lib.patch_color_encoder(config.tokenizer.patch_size,
                                       codes_lib.patch_color_levels(config.model.image_vocab_size))


def write_all_codes(config, data_dir, codes_dir, splits=("train", "validation", "test")):
  encode = stand_in_encoder(config)
  for split in splits:
    records = dataset_records(config, str(data_dir), split)
    codes_lib.write_codes(encode, records, codes_lib.codes_path(str(codes_dir), records, split))


@pytest.fixture(scope="session")
def world(tmp_path_factory):
  root = tmp_path_factory.mktemp("world")
  config = tiny_config()
  data_dir, codes_dir = str(root / "data"), str(root / "codes")
  info = build_data(config, data_dir)
  write_all_codes(config, data_dir, codes_dir)
  return types.SimpleNamespace(config=config, data_dir=data_dir, codes_dir=codes_dir, info=info,
                               encode=stand_in_encoder(config))


@pytest.fixture(scope="session")
def helpers():
  """The functions above, for test modules (tests/ is not a package)."""
  return types.SimpleNamespace(tiny_config=tiny_config, stand_in_encoder=stand_in_encoder,
                               write_all_codes=write_all_codes)
