"""The augmentation policies one command trains with: OHL and the baselines of paper Table 2.

`--policy=` names one of:
  * "ohl": operations sampled from p_θ, θ learned online (paper section 3.2);
  * "uniform": the OHL search space with θ frozen at 0 (p uniform over the 1296 operations);
  * "file:PATH": the OHL search space with p fixed to a learned policy.json (policy transfer);
  * "autoaugment": the published AutoAugment policy of the dataset (`ohl_tf.autoaugment`);
  * "randaugment": RandAugment on the Pillow-exact kernels (`ohl_tf.randaugment`), with the
    published N and M of the dataset;
  * "cutout": the base preprocessing and Cutout (Table 2's "Cutout" column);
  * "none": the base preprocessing only (Table 2's "Baseline" column), no Cutout.
Every policy but "none" applies Cutout with the run's --cutout size after its operations, as
AutoAugment and OHL do on CIFAR (set --cutout=0 to leave it out, as for ImageNet).
"""

import dataclasses

import tensorflow as tf

from ohl_tf import autoaugment
from ohl_tf import policy_file
from ohl_tf import randaugment

NAMES = ("ohl", "uniform", "file:PATH", "autoaugment", "randaugment", "cutout", "none")
_FILE_PREFIX = "file:"
HELP = ("ohl: learn θ | uniform: OHL ops with θ frozen at 0 | file:PATH: OHL ops from a learned "
        "policy.json, fixed | autoaugment: the published AutoAugment policy of the dataset | "
        "randaugment: RandAugment on the Pillow-exact kernels, stateless draws from --seed | cutout: base + Cutout | none: base preprocessing "
        "only (no Cutout).")

# RandAugment's (N layers, M magnitude of 10) as Cubuk et al. 2020 report them for ImageNet
# ResNet-50 (N=2, M=9) and CIFAR-10 WRN-28-10 (N=3, M=5), the latter for every small-image
# dataset here.
_RANDAUGMENT = {"imagenet2012": (2, 9)}
_RANDAUGMENT_DEFAULT = (3, 5)


@dataclasses.dataclass(frozen=True)
class Policy:
  """A parsed --policy.

  Attributes:
    name: one of "ohl", "uniform", "file", "autoaugment", "randaugment", "cutout", "none".
    path: the policy.json of "file:PATH", else None.
  """
  name: str
  path: str | None = None

  @property
  def learns_theta(self):
    return self.name == "ohl"

  @property
  def has_theta(self):
    """Whether the run's θ is its policy (learned, or frozen at 0)."""
    return self.name in ("ohl", "uniform")

  @property
  def trains_one_network(self):
    """The baselines train one network, as in the paper (N > 1 adds best-copy selection)."""
    return self.name not in ("ohl", "uniform")

  @property
  def samples_operations(self):
    """Whether images get OHL operations drawn from a p over the 1296 (counted per trajectory)."""
    return self.name in ("ohl", "uniform", "file")

  @property
  def uses_cutout(self):
    return self.name != "none"


def parse(spec):
  """The `Policy` that a --policy value names.

  Raises:
    ValueError: an unknown name, or "file:" without a path.
  """
  if isinstance(spec, str) and spec.startswith(_FILE_PREFIX):
    path = spec[len(_FILE_PREFIX):]
    if not path:
      raise ValueError("--policy=file:PATH needs the path of a policy.json written by a run. "
                       f"Received: --policy={spec}")
    return Policy("file", path)
  if spec not in NAMES:
    raise ValueError(f"--policy must be one of {', '.join(NAMES)}. Received: --policy={spec}")
  return Policy(spec)


def read_fixed_policy(policy):
  """The p of a "file:" policy, read and checked (call it before anything is written).

  Returns:
    float64 [1296], p over the operations; None for the policies without a file.

  Raises:
    ValueError: the file is missing or is not a policy.json of this search space.
  """
  if policy.name != "file":
    return None
  try:
    return policy_file.read(policy.path)
  except ValueError as error:
    raise ValueError(f"--policy=file:{error}") from error


def batch_augmentation(policy, dataset_name, seed):
  """fn(uint8 images [B,H,W,3], seed [2]) -> uint8 images for "autoaugment" and "randaugment".

  Returns None for the other policies (OHL operations are sampled per image by the pipeline).
  Both functions draw statelessly from the seed the pipeline passes per batch (a function of
  --seed and the step), so a run is reproducible from --seed.

  Args:
    policy: a `Policy`.
    dataset_name: the --dataset, which picks the published policy (or N and M, and the
      translation range).
    seed: the run's seed; unused, the per-batch seeds already derive from it.
  """
  del seed  # The pipeline's per-batch seeds derive from it.
  if policy.name == "autoaugment":
    name = autoaugment.policy_for_dataset(dataset_name)
    return lambda images, batch_seed: autoaugment.apply_policy(images, name, batch_seed)
  if policy.name == "randaugment":
    num_layers, magnitude = _RANDAUGMENT.get(dataset_name, _RANDAUGMENT_DEFAULT)
    translate_policy = autoaugment.policy_for_dataset(dataset_name)
    return lambda images, batch_seed: randaugment.apply_randaugment(
        images, num_layers, magnitude, batch_seed, translate_policy)
  return None
