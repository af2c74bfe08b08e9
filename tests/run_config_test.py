"""The run's settings: one flag per `Config` field, validated in one place."""

import dataclasses

from absl import flags
import pytest

import models
from ohl_tf import run_config


@pytest.fixture
def flag_values():
  values = flags.FlagValues()
  run_config.define_flags(values)
  return values


def test_every_field_is_a_flag_with_its_default_type_and_help(flag_values):
  defaults = run_config.Config()
  for field in dataclasses.fields(run_config.Config):
    flag = flag_values[field.name]
    assert flag.default == field.default, field.name
    assert flag.help == field.metadata["help"] and flag.help, field.name
    if field.default is not None:
      assert type(flag.default) is type(field.default), field.name  # pylint: disable=unidiomatic-typecheck
  assert set(flag_values) == {f.name for f in dataclasses.fields(run_config.Config)}
  assert dataclasses.asdict(defaults)["model_dir"] == "runs/synthetic_resnet8"


def test_parsed_flags_become_the_config(flag_values):
  flag_values(["prog", "--dataset=folder:/data/pets", "--model=resnet20", "--val_size=50",
               "--nesterov", "--theta_lr=0.1", "--data_dir=/tfds"])
  config = run_config.from_flags(flag_values)
  assert (config.dataset, config.model, config.val_size) == ("folder:/data/pets", "resnet20", 50)
  assert config.nesterov and config.theta_lr == 0.1 and config.data_dir == "/tfds"
  # What the user did not give comes from the documented defaults, not a demo file.
  assert config.train_subset == 0 and config.cutout == 16 and config.inner_steps == 0
  assert config.model_dir == "runs/folder_data_pets_resnet20"


@pytest.mark.parametrize("setting, message", [
    (dict(dataset="mnist"), "Unknown dataset 'mnist'"),
    (dict(model="resnet9"), "--model must be one of .*resnet20.*Received: --model=resnet9"),
    (dict(trajectories=0), "--trajectories must be >= 1. Received: --trajectories=0"),
    (dict(estimator="element_es", trajectories=3), "--trajectories must be even"),
    (dict(reward="accurate"), "--reward must be one of accuracy, loss. Received: --reward=accurate"),
    (dict(estimator="natural"), "--estimator must be one of reinforce, pooled, element_es"),
    (dict(batch_size=0), "--batch_size must be >= 1. Received: --batch_size=0"),
    (dict(cutout=-1), "--cutout must be >= 0"),
    (dict(theta_lr=-0.05), "--theta_lr must be > 0. Received: --theta_lr=-0.05"),
    (dict(theta_init=-16.0), r"--theta_init must be in \[-15, 15\]. Received: --theta_init=-16.0"),
    (dict(theta_init=float("nan")), r"--theta_init must be in \[-15, 15\]. Received: "
                                    r"--theta_init=nan"),
    (dict(policy="uniform", theta_init=-4.0),
     r"--theta_init applies only to a policy that learns θ \(--policy=ohl\); leave it at 0 for "
     r"--policy=uniform. Received: --theta_init=-4"),
    (dict(search_space="identity"), "--search_space must be one of paper, paper_identity, "
                                     "autoaugment_cifar10. Received: --search_space=identity"),
    (dict(policy="trivialaugment", search_space="paper_identity"),
     r"--search_space only applies to the policies that sample OHL operations \(ohl, uniform, "
     r"file:PATH\); leave it at 'paper' for --policy=trivialaugment"),
    (dict(augment_on="gpu"), "--augment_on must be one of host, device. Received: "
                             "--augment_on=gpu"),
    (dict(augment_on="device", augment_path="per_image"),
     "--augment_on=device .* --augment_path=per_image .* Use --augment_on=device with "
     "--augment_path=batched .* or --augment_path=per_image with --augment_on=host"),
])
def test_an_invalid_setting_is_refused_naming_it(setting, message):
  with pytest.raises(ValueError, match=message):
    run_config.Config(**setting)


def test_the_model_help_lists_the_registered_models():
  help_text = {f.name: f.metadata["help"] for f in dataclasses.fields(run_config.Config)}
  assert all(name in help_text["model"] for name in models.names())
