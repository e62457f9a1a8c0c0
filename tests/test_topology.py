"""Slice names in both conventions parse to the same chips, shapes and published figures."""
import pytest

from arm_jax import topology
from arm_jax.errors import UserError


@pytest.mark.parametrize("name, accel, topo, chips, hosts", [
    # Cloud names count TensorCores for v4/v5p: v5p-64 = 32 chips.
    ("v5p-8", "v5p-8", "v5p:2x2x1", 4, 1),
    ("v5p-16", "v5p-16", "v5p:2x2x2", 8, 2),
    ("v5p-32", "v5p-32", "v5p:2x2x4", 16, 4),
    ("v5p-64", "v5p-64", "v5p:2x4x4", 32, 8),
    ("v5p-128", "v5p-128", "v5p:4x4x4", 64, 16),
    ("v5p-1024", "v5p-1024", "v5p:8x8x8", 512, 128),
    ("v4-32", "v4-32", "v4:2x2x4", 16, 4),
    # ... and chips for v5e/v6e.
    ("v5litepod-16", "v5litepod-16", "v5e:4x4", 16, 4),
    ("v5e-8", "v5litepod-8", "v5e:2x4", 8, 1),
    ("v5litepod-1", "v5litepod-1", "v5e:1x1", 1, 1),
    ("v6e-16", "v6e-16", "v6e:4x4", 16, 4),
    ("v6e-256", "v6e-256", "v6e:16x16", 256, 64),
    ("v6e-4", "v6e-4", "v6e:2x2", 4, 1),
])
def test_cloud_names(name, accel, topo, chips, hosts):
  t = topology.parse(name)
  assert (t.accelerator_type, t.topology_name, t.chips, t.hosts) == (accel, topo, chips, hosts)


@pytest.mark.parametrize("raw, cloud", [
    ("v5p:2x4x4", "v5p-64"), ("v5:2x4x4", "v5p-64"), ("V5P:2x2x1", "v5p-8"),
    ("v5e:4x4", "v5litepod-16"), ("v6e:8x16", "v6e-128"), ("v4:2x2x2", "v4-16"),
])
def test_raw_shapes_round_trip(raw, cloud):
  t = topology.parse(raw)
  assert t.accelerator_type == cloud
  assert topology.parse(cloud) == t


def test_nonstandard_shape_accepted_raw_only():
  t = topology.parse("v5p:2x2x3")
  assert (t.chips, t.accelerator_type, t.hosts) == (12, "v5p-24", 3)
  with pytest.raises(topology.TopologyError, match="no standard slice of 12 chips"):
    topology.parse("v5p-24")


def test_published_figures():
  v5p, v5e, v6e, v4 = (topology.parse(n) for n in ("v5p-64", "v5e-16", "v6e-16", "v4-8"))
  assert v5p.peak_flops_per_chip == 459e12 and v5p.chip.hbm_gib == 95
  assert v5e.peak_flops_per_chip == 197e12 and v5e.chip.hbm_gib == 16
  assert v6e.peak_flops_per_chip == 918e12 and v6e.chip.hbm_gib == 32
  assert v4.peak_flops_per_chip == 275e12 and v4.chip.hbm_gib == 32
  assert v5p.peak_flops == 32 * 459e12
  assert v5p.hbm_bytes_per_chip == 95 * 1024**3
  assert v5p.chip.runtime_version == "v2-alpha-tpuv5"
  assert v5e.chip.runtime_version == "v2-alpha-tpuv5-lite"


@pytest.mark.parametrize("name, hosts, per_host", [
    ("h100-8", 1, 8), ("h100", 1, 8), ("16xH100", 2, 8), ("h100-4", 1, 4), ("h200-32", 4, 8),
])
def test_gpus(name, hosts, per_host):
  t = topology.parse(name)
  assert (t.hosts, t.chips_per_host, t.chips) == (hosts, per_host, hosts * per_host)
  assert t.chip.platform == "gpu" and t.accelerator_type == "" and t.topology_name == ""
  assert t.name == f"{t.chip.generation}-{hosts * per_host}"


def test_gpu_figures():
  h100 = topology.parse("h100-8")
  assert h100.peak_flops_per_chip == 989e12 and h100.chip.measured_bf16_flops == 790e12
  assert h100.chip.hbm_gib == 80


@pytest.mark.parametrize("bad, message", [
    ("v5p-63", "must be even"),
    ("v5p-12", "no standard slice of 6 chips"),
    ("v5e-2", "no standard slice of 2 chips"),
    ("v9-8", "unknown accelerator"),
    ("tpu", "cannot read accelerator"),
    ("v5p:2x4", "3 axes"),
    ("v6e:4x4x4", "2 axes"),
    ("v5p:0x4x4", "at least 1"),
    ("h100:2x8", "take a count"),
    ("h100-12", "whole hosts"),
])
def test_bad_names_are_user_errors(bad, message):
  with pytest.raises(UserError, match=message):
    topology.parse(bad)


def test_standard_shapes_are_the_published_tables():
  v5p, v6e = topology.CHIPS["v5p"], topology.CHIPS["v6e"]
  got = [topology.standard_shape(v5p, c) for c in (4, 8, 16, 32, 64, 128, 256, 2048, 4096)]
  assert got == [(2, 2, 1), (2, 2, 2), (2, 2, 4), (2, 4, 4), (4, 4, 4), (4, 4, 8), (4, 8, 8),
                 (8, 16, 16), (16, 16, 16)]
  got = [topology.standard_shape(v6e, c) for c in (1, 4, 8, 16, 32, 64, 128, 256)]
  assert got == [(1, 1), (2, 2), (2, 4), (4, 4), (4, 8), (8, 8), (8, 16), (16, 16)]


def test_cli_prints_one_field_and_fails_in_one_line(capsys):
  assert topology.main(["v5p-64", "--field", "topology"]) == 0
  assert capsys.readouterr().out == "v5p:2x4x4\n"
  assert topology.main(["v5p:2x4x4", "--field", "accelerator_type"]) == 0
  assert capsys.readouterr().out == "v5p-64\n"
  assert topology.main(["v5p-63"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("topology: error:") and err.count("\n") == 1


def test_megacore_generations_say_so_for_get_topology_desc():
  assert topology.parse("v4-16").chip.chip_config_name == "megacore"
  assert topology.parse("v5p-64").summary()["chip_config_name"] == "megacore"
  assert topology.parse("v6e-16").summary()["chip_config_name"] == "default"
  assert topology.parse("h100-8").summary()["chip_config_name"] == ""


@pytest.mark.parametrize("name", ["v5p-16", "v4-16", "v5e-16", "v6e-8"])
def test_topology_names_are_what_libtpu_builds(name):
  pytest.importorskip("libtpu", reason="needs jax[tpu]: pip install -r requirements-tpu.txt")
  from arm_jax.aot import topology_devices
  t = topology.parse(name)
  assert len(topology_devices(t)) == t.chips
