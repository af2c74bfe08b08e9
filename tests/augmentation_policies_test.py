"""--policy: one registered entry per augmentation policy."""

import numpy as np
import pytest

from ohl_tf import augment
from ohl_tf import augmentation_policies
from ohl_tf import export
from ohl_tf import policy_file


def test_the_registry_lists_every_policy_with_its_help():
  assert augmentation_policies.names() == ["ohl", "uniform", "file:PATH", "autoaugment",
                                           "randaugment", "trivialaugment", "cutout", "none"]
  help_text = augmentation_policies.flag_help()
  assert all(f"{name}: " in help_text for name in augmentation_policies.names())


@pytest.mark.parametrize("spec, learns, has_theta, samples, cutout, batch", [
    ("ohl", True, True, True, True, False),
    ("uniform", False, True, True, True, False),
    ("file:p.json", False, False, True, True, False),
    ("autoaugment", False, False, False, True, True),
    ("randaugment", False, False, False, True, True),
    ("trivialaugment", False, False, False, True, True),
    ("cutout", False, False, False, True, False),
    ("none", False, False, False, False, False),
])
def test_each_policy_says_what_it_does(spec, learns, has_theta, samples, cutout, batch):
  entry = augmentation_policies.parse(spec)
  assert (entry.learns_theta, entry.has_theta, entry.samples_operations,
          entry.uses_cutout) == (learns, has_theta, samples, cutout)
  assert (entry.augment_batch("cifar10") is not None) == batch
  assert entry.trains_one_network == (not has_theta)


@pytest.mark.parametrize("spec, message", [
    ("random", r"--policy must be one of ohl, uniform, file:PATH, autoaugment, randaugment, "
               r"trivialaugment, cutout, none. Received: --policy=random"),
    ("file:", r"--policy=file:PATH needs the PATH of a policy.json"),
    ("file", r"--policy must be one of .* Received: --policy=file"),
    ("ohl:x", r"Received: --policy=ohl:x"),
])
def test_a_bad_policy_is_refused_naming_the_known_ones(spec, message):
  with pytest.raises(ValueError, match=message):
    augmentation_policies.parse(spec)


def test_a_file_policy_reads_its_probabilities(tmp_path):
  path = tmp_path / "policy.json"
  theta = np.linspace(-1, 1, augment.NUM_OPERATIONS, dtype=np.float32)
  export.write_json(path, policy_file.learned_payload(theta))
  entry = augmentation_policies.parse(f"file:{path}")
  assert entry.path == str(path)
  np.testing.assert_allclose(entry.fixed_probabilities(augment.PAPER), policy_file.read(str(path)))
  assert augmentation_policies.parse("ohl").fixed_probabilities(augment.PAPER) is None
  with pytest.raises(ValueError, match=r"--policy=file:.*absent.json: no such file"):
    augmentation_policies.parse(f"file:{tmp_path / 'absent.json'}").fixed_probabilities(
        augment.PAPER)


def test_a_name_registered_twice_is_refused():
  with pytest.raises(ValueError, match="'cutout' is already registered"):
    augmentation_policies.register(augmentation_policies.AugmentationPolicy("cutout", "again"))
