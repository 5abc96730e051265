import pytest

from agent_lab import ConfigError, RunConfig


def test_defaults_are_valid_and_round_trip_through_a_dict():
    config = RunConfig(lr_milestones=[0.25, 0.5], lr_factors=[0.1, 0.005])
    assert config.lr_milestones == (0.25, 0.5)  # lists from JSON/CLI become tuples
    again = RunConfig.from_dict(config.to_dict())
    assert again == config and again.config_hash() == config.config_hash()


def test_hash_changes_with_results_relevant_fields_but_not_with_device():
    base = RunConfig()
    assert base.replace(device="cpu").config_hash() == base.config_hash()
    assert base.replace(lr=0.05).config_hash() != base.config_hash()
    assert base.replace(seed=1).run_name() != base.run_name()
    assert base.config_hash() in base.run_name()


@pytest.mark.parametrize("changes, field, hint", [
    ({"model": "vgg17"}, "model", "vgg16"),
    ({"model": "wrn-27-4"}, "model", "wrn-D-K"),
    ({"dataset": "mnist"}, "dataset", "cifar10-mini"),
    ({"pipeline": "magic"}, "pipeline", "dense"),
    ({"optimizer": "lbfgs"}, "optimizer", "sgd"),
    ({"sparsity": 1.0}, "sparsity", "[0, 1)"),
    ({"sparsity": -0.1}, "sparsity", "[0, 1)"),
    ({"sparsity": 0.9}, "sparsity", "sparse pipeline"),
    ({"lr": -0.1}, "lr", "(0, inf]"),
    ({"lr": 0.0}, "lr", "(0, inf]"),
    ({"lr": float("nan")}, "lr", "finite"),
    ({"epochs": 0}, "epochs", "[1, inf]"),
    ({"epochs": 2.5}, "epochs", "int"),
    ({"batch_size": 0}, "batch_size", "[1, inf]"),
    ({"width": 0}, "width", "(0, inf]"),
    ({"momentum": 1.0}, "momentum", "[0, 1)"),
    ({"nesterov": True, "momentum": 0.0}, "nesterov", "momentum > 0"),
    ({"lr_factors": (0.1,)}, "lr_factors", "one factor per milestone"),
    ({"lr_milestones": (0.75, 0.5)}, "lr_milestones", "increasing"),
    ({"lr_schedule": "poly"}, "lr_schedule", "cosine"),
    ({"device": "tpu"}, "device", "cuda:N"),
    ({"augment": "yes"}, "augment", "true or false"),
    ({"dataset": "imagefolder"}, "data_root", "needs a data_root"),
    ({"data_root": "/nonexistent/agent-lab-data"}, "data_root", "does not exist"),
    ({"train_subset": 0}, "train_subset", "[1, inf]"),
])
def test_bad_values_raise_one_line_errors_naming_field_and_valid_values(changes, field, hint):
    with pytest.raises(ConfigError) as info:
        RunConfig(**changes)
    message = str(info.value)
    assert message.startswith(f"RunConfig.{field}:")
    assert hint in message
    assert "\n" not in message


def test_unknown_field_names_the_valid_fields():
    with pytest.raises(ConfigError, match="unknown field.*learning_rate.*valid fields: .*lr"):
        RunConfig.from_dict({"learning_rate": 0.1})


def test_any_wide_resnet_depth_and_width_is_accepted():
    assert RunConfig(model="wrn-16-2").model == "wrn-16-2"
