"""`ript --help` and every subcommand's --help work (argparse formats help lazily: a bad help
string or a broken import would only show up when a user asks for help)."""

import pytest

from ript_trainer.cli import SUBCOMMANDS, main


def test_top_level_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert f"ript {name}" in capsys.readouterr().out


def test_unknown_subcommand_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2


def test_a_partial_section_keeps_the_section_defaults():
    from ript_sim.train_cli import LiberoTrainConfig
    from ript_trainer.config_io import load_config

    default = LiberoTrainConfig()
    config = load_config(LiberoTrainConfig, overrides=["train.iterations=3", "train.loop.target_kl=0.05",
                                                       "train.learning_rate=3e-5"])
    assert config.train.iterations == 3 and config.train.loop.target_kl == 0.05
    assert config.train.learning_rate == 3e-5  # YAML 1.1 alone would give the string "3e-5"
    assert load_config(LiberoTrainConfig, overrides=["suite=1e5x"]).suite == "1e5x"
    # Everything not overridden is LiberoTrainConfig's default, not the bare TrainConfig/LoopConfig one.
    assert config.train.loop.minibatch_size == default.train.loop.minibatch_size == 64
    assert config.train.loop.ppo_epochs == default.train.loop.ppo_epochs == 2
    assert config.train.sampler.batch_size == default.train.sampler.batch_size == 32
    assert config.train.eval_every == default.train.eval_every


def test_overrides_leave_the_base_untouched():
    # A resumed run compares its saved config with the overridden one: the override must not edit the saved dict.
    from ript_sim.train_cli import LiberoTrainConfig
    from ript_trainer.config_io import load_config

    base = {"train": {"iterations": 4, "loop": {"ppo_epochs": 2}}}
    config = load_config(LiberoTrainConfig, overrides=["train.iterations=9", "train.loop.ppo_epochs=4"], base=base)
    assert (config.train.iterations, config.train.loop.ppo_epochs) == (9, 4)
    assert base == {"train": {"iterations": 4, "loop": {"ppo_epochs": 2}}}
