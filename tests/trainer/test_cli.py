"""`ript --help` and every subcommand's --help work (argparse formats help lazily: a bad help
string or a broken import would only show up when a user asks for help)."""

import pytest

from ript.cli.main import SUBCOMMANDS, main


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
    out = capsys.readouterr().out
    assert f"ript {name}" in out
    assert "%%" not in out, "a description printed argparse's %-escape as written"


def test_unknown_subcommand_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2


def test_a_partial_section_keeps_the_section_defaults():
    from ript.cli.train import LiberoTrainConfig
    from ript.core.config_io import load_config

    default = LiberoTrainConfig()
    config = load_config(
        LiberoTrainConfig, overrides=["train.iterations=3", "train.loop.target_kl=0.05", "train.learning_rate=3e-5"]
    )
    assert config.train.iterations == 3 and config.train.loop.target_kl == 0.05
    assert config.train.learning_rate == 3e-5  # YAML 1.1 alone would give the string "3e-5"
    assert load_config(LiberoTrainConfig, overrides=["suite=1e5x"]).suite == "1e5x"
    # Everything not overridden is LiberoTrainConfig's default, not the bare TrainConfig/LoopConfig one.
    assert config.train.loop.minibatch_size == default.train.loop.minibatch_size == 2048
    assert config.train.loop.ppo_epochs == default.train.loop.ppo_epochs == 4
    assert config.train.sampler.batch_size == default.train.sampler.batch_size == 48
    assert config.train.loop.loss_normalization == "trial"
    assert config.train.eval_every == default.train.eval_every


def test_overrides_leave_the_base_untouched():
    # A resumed run compares its saved config with the overridden one: the override must not edit the saved dict.
    from ript.cli.train import LiberoTrainConfig
    from ript.core.config_io import load_config

    base = {"train": {"iterations": 4, "loop": {"ppo_epochs": 2}}}
    config = load_config(LiberoTrainConfig, overrides=["train.iterations=9", "train.loop.ppo_epochs=4"], base=base)
    assert (config.train.iterations, config.train.loop.ppo_epochs) == (9, 4)
    assert base == {"train": {"iterations": 4, "loop": {"ppo_epochs": 2}}}


def test_trainer_node_parameters_reach_the_recipe_and_every_knob():
    # The ROS trainer's parameters come from the same recipe as `ript train` and reach what the sim
    # runs needed (target_kl, frozen parameters, exploration knobs), as ROS delivers them.
    from dataclasses import asdict

    from ript.core.learner import TrainConfig
    from ript.ros.trainer_node import config_from_parameters

    config, knobs = config_from_parameters(lambda name, default: default)
    assert asdict(config) == asdict(TrainConfig()) and knobs == {}
    given = {
        "target_kl": 0.05,
        "frozen_parameters": "head.scale_head",
        "loss_normalization": "trial",
        "context_selection": "uniform",
        "learning_rate": "3e-6",
        "batch_size": 48,
        "dynamic": "false",
        "fixed_action_dims": "3,4,5",
        "exploration_floor": 0.02,
        "execute_steps": 4,
        "gripper_temperature": "0.5",
        "correlate_across_queries": "true",
    }
    config, knobs = config_from_parameters(lambda name, default: given.get(name, default))
    assert config.loop.target_kl == 0.05 and config.frozen_parameters == ["head.scale_head"]
    assert config.loop.loss_normalization == "trial" and config.sampler.context_selection == "uniform"
    assert config.learning_rate == 3e-6 and config.sampler.batch_size == 48 and config.sampler.dynamic is False
    assert knobs == {
        "fixed_action_dims": [3, 4, 5],
        "exploration_floor": 0.02,
        "execute_steps": 4,
        "gripper_temperature": 0.5,
        "correlate_across_queries": True,
    }
    assert (
        config_from_parameters(lambda name, default: 0.0 if name == "target_kl" else default)[0].loop.target_kl is None
    )
    unset = config_from_parameters(lambda name, default: "auto")  # launch arguments left unset: the recipe
    assert asdict(unset[0]) == asdict(TrainConfig()) and unset[1] == {}
    with pytest.raises(ValueError, match="loss_normalization"):
        config_from_parameters(lambda name, default: "episode" if name == "loss_normalization" else default)
    with pytest.raises(ValueError, match="correlate_across_queries must be true or false"):
        config_from_parameters(lambda name, default: "yes" if name == "correlate_across_queries" else default)


# A valid value other than the recipe's for every field of the training tree the node takes.
OTHER_VALUES = {
    "iterations": 7,
    "max_env_steps": 5000,
    "learning_rate": 3e-6,
    "adapt_learning_rate": False,
    "max_lr_halvings": 2,
    "final_learning_rate": 1e-6,
    "average_decay": 0.9,
    "weight_decay": 0.01,
    "keep_checkpoints": 3,
    "frozen_parameters": ["head.scale_head"],
    "sampler.group_size": 4,
    "sampler.batch_size": 16,
    "sampler.dynamic": False,
    "sampler.skip_solved": False,
    "sampler.retry_after_skips": 5,
    "sampler.context_selection": "uniform",
    "sampler.uniform_fraction": 0.5,
    "sampler.min_task_share": 0.2,
    "sampler.favor_failing_tasks": True,
    "sampler.history_trials": 32,
    "sampler.prior_strength": 2.0,
    "sampler.early_stop_fraction": 0.8,
    "sampler.max_group_attempts": 9,
    "loop.ppo_epochs": 2,
    "loop.minibatch_size": 64,
    "loop.clip_low": 0.1,
    "loop.clip_high": 0.28,
    "loop.max_grad_norm": 0.5,
    "loop.loss_normalization": "token",
    "loop.target_kl": 0.05,
}
# what a field needs beside it to be valid
COMPANIONS = {"final_learning_rate": {"train.max_env_steps": 5000}}


def test_every_training_field_is_a_trainer_node_parameter(tmp_path):
    """Each field of TrainConfig (but those the node sets itself) is `train.<field>` on the node; a
    new field without one fails here. Layers: recipe < config file < short names < train.<field>."""
    from dataclasses import asdict

    import yaml

    from ript.core.learner import TrainConfig
    from ript.ros.trainer_node import config_from_parameters, train_fields

    def value_at(config, path):
        node = asdict(config)
        for key in path.split("."):
            node = node[key]
        return node

    assert sorted(train_fields()) == sorted(OTHER_VALUES), "a training field the node cannot set (or a stale entry)"
    recipe = TrainConfig()
    for path, value in OTHER_VALUES.items():
        assert value_at(recipe, path) != value, path
        # as ROS delivers them: lists and None-able fields as text, numbers as numbers
        given = {f"train.{path}": ",".join(value) if isinstance(value, list) else value}
        given.update(COMPANIONS.get(path, {}))
        config, _ = config_from_parameters(lambda name, default: given.get(name, default))
        assert value_at(config, path) == value, path
    none = config_from_parameters(lambda name, default: "none" if name == "train.loop.target_kl" else default)[0]
    assert none.loop.target_kl is None

    file = tmp_path / "train.yaml"  # the same file `ript train --config` reads: its train section
    file.write_text(
        yaml.safe_dump({"train": {"sampler": {"group_size": 4, "batch_size": 16}, "loop": {"clip_low": 0.1}}})
    )
    layers = {"config": str(file), "batch_size": 24, "train.loop.clip_low": 0.15}
    config, _ = config_from_parameters(lambda name, default: layers.get(name, default))
    assert (config.sampler.group_size, config.sampler.batch_size, config.loop.clip_low) == (4, 24, 0.15)
    assert config.learning_rate == recipe.learning_rate  # what no layer sets stays the recipe's
    file.write_text(yaml.safe_dump({"sampler": {"group_sise": 4}}))
    with pytest.raises(ValueError, match="group_sise"):
        config_from_parameters(lambda name, default: str(file) if name == "config" else default)
