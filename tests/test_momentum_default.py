"""RunConfig's momentum follows the optimizer: 0.9 (SGD family, Adam's beta1), 0 for mvr and agent-mvr."""
import json
import pickle

import pytest

from agent_lab import ConfigError, RunConfig, train
from agent_lab.cli import main
from agent_lab.config import CHOICES
from agent_lab.quickstart import QUICKSTART_CONFIG
from agent_lab.runs import load_run
from agent_lab.widgets import TrainPanel

# Hashes computed with the code before momentum's default followed the optimizer: run folders
# are named after them, so they must never change.
PINNED_HASHES = [
    (RunConfig(), "f4062c12b3c4"),
    (RunConfig(optimizer="sgd", momentum=0.9), "f4062c12b3c4"),
    (RunConfig(optimizer="adam"), "b6a97862eeb5"),
    (RunConfig(optimizer="agent", pipeline="rigl", sparsity=0.9), "e2fa030962b2"),
    (RunConfig(optimizer="mvr", momentum=0.0), "025b532e8571"),
    (RunConfig(optimizer="agent-mvr", momentum=0), "ac37b7b256a7"),
    (QUICKSTART_CONFIG, "94cfd13ca457"),
]

def expected_momentum(optimizer: str) -> float:
    return 0.0 if optimizer in ("mvr", "agent-mvr") else 0.9  # Adam: beta1, as before


TINY_EPOCH = dict(dataset="synthetic", model="vgg16", width=0.125, train_subset=128, test_subset=64, batch_size=64,
                  epochs=1, lr=0.05, device="cpu", seed=1)


@pytest.mark.parametrize("config, expected", PINNED_HASHES)
def test_config_hashes_of_existing_configs_are_unchanged(config, expected):
    assert config.config_hash() == expected


@pytest.mark.parametrize("optimizer", CHOICES["optimizer"])
def test_every_optimizer_builds_a_valid_config_with_default_momentum(optimizer):
    assert RunConfig(optimizer=optimizer).momentum == expected_momentum(optimizer)


def test_default_mvr_config_is_the_one_with_explicit_momentum_zero():
    assert RunConfig(optimizer="mvr") == RunConfig(optimizer="mvr", momentum=0.0)
    assert RunConfig(optimizer="mvr").config_hash() == "025b532e8571"
    assert RunConfig(optimizer="agent-mvr", momentum=None).to_dict()["momentum"] == 0.0


@pytest.mark.parametrize("optimizer", ["mvr", "agent-mvr"])
@pytest.mark.parametrize("momentum", [0.9, 0.5])
def test_explicit_nonzero_momentum_with_mvr_is_still_refused(optimizer, momentum):
    with pytest.raises(ConfigError, match=r"^RunConfig.momentum: .*is its own momentum"):
        RunConfig(optimizer=optimizer, momentum=momentum)
    with pytest.raises(ConfigError, match=r"^RunConfig.momentum:"):
        RunConfig(momentum=momentum).replace(optimizer=optimizer)  # an explicit momentum stays explicit


def test_a_default_momentum_follows_the_optimizer_through_replace_and_pickle():
    assert RunConfig().replace(optimizer="mvr").momentum == 0.0
    assert RunConfig(optimizer="agent-mvr").replace(optimizer="agent").momentum == 0.9
    assert pickle.loads(pickle.dumps(RunConfig())).replace(optimizer="mvr").momentum == 0.0
    assert RunConfig(momentum=0.0).replace(optimizer="agent").momentum == 0.0  # plain SGD stays plain
    assert RunConfig(optimizer="adam", momentum=0.8).replace(optimizer="sgd").momentum == 0.8


@pytest.mark.parametrize("optimizer", CHOICES["optimizer"])
def test_config_json_round_trips(optimizer):
    config = RunConfig(optimizer=optimizer)
    stored = json.loads(json.dumps(config.to_dict()))
    assert type(config.to_dict()["momentum"]) is float
    again = RunConfig.from_dict(stored)
    assert again == config and again.config_hash() == config.config_hash() and again.to_dict() == stored


PANEL_BASES = {
    "quickstart": lambda: QUICKSTART_CONFIG,
    "stored sgd config": lambda: RunConfig.from_dict(json.loads(json.dumps(RunConfig(**TINY_EPOCH).to_dict()))),
    "mvr base": lambda: RunConfig(**TINY_EPOCH, optimizer="mvr", momentum=0.0),
}


@pytest.mark.parametrize("base", list(PANEL_BASES))
def test_every_optimizer_the_train_panel_offers_makes_a_valid_config(base):
    panel = TrainPanel(PANEL_BASES[base](), out="unused")
    assert set(panel.optimizer.options) == set(CHOICES["optimizer"])
    for optimizer in panel.optimizer.options:
        panel.optimizer.value = optimizer
        config = panel.config()
        assert config.optimizer == optimizer and config.momentum == expected_momentum(optimizer)


def test_train_panel_keeps_a_chosen_momentum():
    panel = TrainPanel(RunConfig(**TINY_EPOCH, momentum=0.5), out="unused")
    panel.optimizer.value = "agent"
    assert panel.config().momentum == 0.5


@pytest.mark.parametrize("optimizer", ["mvr", "agent-mvr"])
def test_mvr_optimizers_train_a_tiny_epoch_with_defaults(optimizer, tmp_path):
    result = train(RunConfig(**TINY_EPOCH, optimizer=optimizer), out=tmp_path, progress=False)
    assert result.status == "completed" and len(result.history) == 1
    assert result.config.momentum == 0.0
    stored = load_run(result.run_dir)  # config.json read back by the run store
    assert stored.config == result.config and stored.config.config_hash() == result.config.config_hash()


def test_cli_trains_mvr_with_the_default_momentum(tmp_path, capsys):
    argv = ["train", "--optimizer", "mvr", "--epochs", "1", "--dataset", "synthetic", "--width", "0.125",
            "--train_subset", "128", "--test_subset", "64", "--batch_size", "64", "--device", "cpu", "--quiet",
            "--out", str(tmp_path)]
    assert main(argv) == 0, capsys.readouterr().err
    assert "status: completed" in capsys.readouterr().out


def test_cli_refuses_an_explicit_momentum_with_mvr(tmp_path, capsys):
    argv = ["train", "--optimizer", "mvr", "--momentum", "0.9", "--dataset", "synthetic", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "RunConfig.momentum: 0.9 is invalid" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_help_explains_the_momentum_default(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--momentum MOMENTUM" in help_text and "0 for mvr and agent-mvr" in help_text
