import pytest

from arm_jax.cli import main


@pytest.mark.parametrize("command, override, message", [
    ("rl", "--config.rl.stages=(('video',3),)", "rl.stages entry 1 has kind 'video'"),
    ("rl-study", "--config.rl.rewards=(('beauty',1.0),)", "unknown reward 'beauty'"),
    ("rl", "--config.rl.advantage=ppo", "unknown advantage estimator 'ppo'"),
    ("rl", "--config.rl.group_size=1", "rl.group_size must be >= 2"),
    ("rl", "--config.train.seed=0", "no pretrained checkpoint"),
])
def test_bad_rl_input_is_one_line(command, override, message, tmp_path, capsys):
  assert main([command, "--workdir", str(tmp_path), override]) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1
