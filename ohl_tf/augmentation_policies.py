"""What `--policy` names: how one run augments its training images (OHL and Table 2's baselines).

Every policy is one registered `AugmentationPolicy` entry, which says all the trainer does
differently per policy: whether θ learns (its outer step's `estimator`), whether images get OHL
operations drawn from a p over the search space's K (1296 in the paper's; and counted; `sampling_log_probabilities`), whether
Cutout follows (`cutout_size`), the batch augmentation of the policies that are not over the OHL
operations (`augment_batch`), what policy.json holds (`policy_payload`) and what the run warns of
(`warnings`). `--policy`'s help and the unknown-name error are built from the registry; a new
policy is one `register(AugmentationPolicy(...))` call (docs/extending.md).

  * "ohl": operations sampled from p_θ, θ learned online (paper section 3.2);
  * "uniform": the OHL search space with θ frozen at 0 (p uniform over its K operations);
  * "file:PATH": the OHL search space with p fixed to a learned policy.json (policy transfer);
  * "autoaugment": the published AutoAugment policy of the dataset (`ohl_tf.autoaugment`);
  * "randaugment": RandAugment on the Pillow-exact kernels (`ohl_tf.randaugment`), with the
    published N and M of the dataset;
  * "trivialaugment": TrivialAugment Wide on the same kernels (`ohl_tf.trivialaugment`), the
    same for every dataset;
  * "cutout": the base preprocessing and Cutout (Table 2's "Cutout" column);
  * "none": the base preprocessing only (Table 2's "Baseline" column), no Cutout.
Every policy but "none" applies Cutout with the run's --cutout size after its operations, as
AutoAugment and OHL do on CIFAR (set --cutout=0 to leave it out, as for ImageNet).
"""

import dataclasses

from ohl_tf import autoaugment
from ohl_tf import estimators
from ohl_tf import policy_file
from ohl_tf import randaugment
from ohl_tf import trivialaugment

# RandAugment's (N layers, M magnitude of 10) as Cubuk et al. 2020 report them for ImageNet
# ResNet-50 (N=2, M=9) and CIFAR-10 WRN-28-10 (N=3, M=5), the latter for every small-image
# dataset here.
_RANDAUGMENT = {"imagenet2012": (2, 9)}
_RANDAUGMENT_DEFAULT = (3, 5)


@dataclasses.dataclass(frozen=True)
class AugmentationPolicy:
  """One --policy: what it does to the training images.

  Attributes:
    name: the registered name ("ohl", "file", ...).
    help_text: what --help says of it.
    learns_theta: the outer step moves θ (REINFORCE or another estimator).
    has_theta: the run's θ is its policy (learned, or frozen at 0): exported and drawn.
    samples_operations: images get OHL operations drawn from a p over the search space's K, counted per
      trajectory.
    uses_cutout: Cutout follows the operations.
    batch_augmentation: for a policy over other operations, `fn(dataset_name)` returning
      `fn(uint8 images [B,H,W,3], seed [2]) -> uint8 images`; None otherwise.
    argument: the name of the spec's argument ("PATH" of "file:PATH"), or None.
    path: the argument's value once parsed (the policy.json of "file:PATH"), else None.
  """
  name: str
  help_text: str
  learns_theta: bool = False
  has_theta: bool = False
  samples_operations: bool = False
  uses_cutout: bool = True
  batch_augmentation: object = None
  argument: str | None = None
  path: str | None = None

  @property
  def spec(self):
    return f"{self.name}:{self.argument}" if self.argument else self.name

  @property
  def trains_one_network(self):
    """The baselines train one network, as in the paper (N > 1 adds best-copy selection)."""
    return not self.has_theta

  def estimator(self, name):
    """The `estimators.Estimator` of the outer step: --estimator's (`name`) when θ learns;
    else `estimators.FIXED`, whatever --estimator says: θ stays, and the trajectories sample
    from the policy's own p, unperturbed.

    Raises:
      ValueError: `name` is not a registered estimator.
    """
    learned = estimators.get(name)
    return learned if self.learns_theta else estimators.FIXED

  def cutout_size(self, cutout):
    """The Cutout square side the pipeline applies: --cutout, or 0 for a policy without."""
    return cutout if self.uses_cutout else 0

  def warnings(self, config):
    """What the trainer warns of for this policy under `config` (a `run_config.Config`): the
    settings it ignores, and where it departs from the paper's baselines."""
    messages = []
    if not self.learns_theta and config.estimator != estimators.names()[0]:
      messages.append(f"--estimator={config.estimator} has no effect with "
                      f"--policy={config.policy}, whose θ does not learn.")
    if self.trains_one_network and config.trajectories > 1:
      messages.append(f"--policy={config.policy} with --trajectories={config.trajectories} "
                      f"trains {config.trajectories} networks and copies the best to all every "
                      "outer step; the paper's baselines train one (--trajectories=1).")
    return messages

  def sampling_log_probabilities(self, learned, fixed_probabilities):
    """Per trajectory, log p of the operations it samples in a period; None when the policy
    draws no OHL operation.

    Args:
      learned: the list of N log p at the trajectories' points of θ
        (`estimators.Estimator.log_probabilities`): what ohl and uniform sample from.
      fixed_probabilities: this policy's `fixed_probabilities` (the p of "file:"), or None.
    """
    if not self.samples_operations:
      return None
    if fixed_probabilities is not None:
      return [policy_file.log_probabilities(fixed_probabilities)] * len(learned)
    return learned

  def policy_payload(self, theta, lineage, fixed_probabilities):
    """What the run's policy.json holds (`ohl_tf.policy_file`), or None for a policy that is not
    over the OHL operations (it writes none).

    Args:
      theta: the run's θ [K].
      lineage: float64 [K], the running op counts of each period's best trajectory.
      fixed_probabilities: this policy's `fixed_probabilities`, or None.
    """
    if self.has_theta:
      return policy_file.learned_payload(theta, lineage)
    if fixed_probabilities is not None:  # the run keeps the p it trained with
      return policy_file.fixed_payload(fixed_probabilities, self.path, lineage)
    return None

  def augment_batch(self, dataset_name):
    """fn(uint8 images [B,H,W,3], seed [2]) -> uint8 images, or None for the policies whose
    images get OHL operations per image (the pipeline samples those) or nothing at all.

    The batch functions draw statelessly from the seed the pipeline passes per batch (a function
    of --seed and the step), so a run is reproducible from --seed.
    """
    return self.batch_augmentation(dataset_name) if self.batch_augmentation else None

  def fixed_probabilities(self, space):
    """The p [K] of a "file:" policy, read and checked (before anything is written); None
    for the others.

    Args:
      space: the run's `augment.SearchSpace` (--search_space), the file's must be the same.

    Raises:
      ValueError: the file is missing or is not a policy.json of this search space.
    """
    if self.path is None:
      return None
    try:
      return policy_file.read(self.path, space)
    except ValueError as error:
      raise ValueError(f"--policy={self.name}:{error}") from error


_POLICIES = {}


def register(entry):
  """Registers an `AugmentationPolicy` under its name; a name registered twice raises."""
  if entry.name in _POLICIES:
    raise ValueError(f"Augmentation policy {entry.name!r} is already registered.")
  _POLICIES[entry.name] = entry
  return entry


def names():
  """The --policy values the registry knows, in registration order ("file:PATH" with its
  argument)."""
  return [entry.spec for entry in _POLICIES.values()]


def sampling_names():
  """The --policy values whose images get OHL operations (what --search_space applies to)."""
  return [entry.spec for entry in _POLICIES.values() if entry.samples_operations]


def flag_help():
  """--policy's help text: every policy with what it does."""
  return " | ".join(f"{entry.spec}: {entry.help_text}" for entry in _POLICIES.values()) + "."


def parse(spec):
  """The `AugmentationPolicy` that a --policy value names (with its path for "file:PATH").

  Raises:
    ValueError: an unknown name (the message lists the known ones), or an argument missing
      ("file:" without a path) or given to a policy that takes none.
  """
  name, colon, argument = str(spec).partition(":")
  entry = _POLICIES.get(name)
  if entry is None or bool(colon) != bool(entry.argument):
    raise ValueError(f"--policy must be one of {', '.join(names())}. Received: --policy={spec}")
  if entry.argument and not argument:
    raise ValueError(f"--policy={entry.spec} needs the {entry.argument} of a policy.json written "
                     f"by a run. Received: --policy={spec}")
  return dataclasses.replace(entry, path=argument) if entry.argument else entry


def _autoaugment(dataset_name):
  name = autoaugment.policy_for_dataset(dataset_name)
  return lambda images, batch_seed: autoaugment.apply_policy(images, name, batch_seed)


def _randaugment(dataset_name):
  num_layers, magnitude = _RANDAUGMENT.get(dataset_name, _RANDAUGMENT_DEFAULT)
  translate_policy = autoaugment.policy_for_dataset(dataset_name)
  return lambda images, batch_seed: randaugment.apply_randaugment(
      images, num_layers, magnitude, batch_seed, translate_policy)


def _trivialaugment(dataset_name):
  del dataset_name  # TrivialAugment has no per-dataset setting: one space, pixels at any size
  return trivialaugment.apply_trivialaugment


register(AugmentationPolicy("ohl", "learn θ", learns_theta=True, has_theta=True,
                            samples_operations=True))
register(AugmentationPolicy("uniform", "OHL ops with θ frozen at 0", has_theta=True,
                            samples_operations=True))
register(AugmentationPolicy("file", "OHL ops from a learned policy.json, fixed",
                            samples_operations=True, argument="PATH"))
register(AugmentationPolicy("autoaugment", "the published AutoAugment policy of the dataset",
                            batch_augmentation=_autoaugment))
register(AugmentationPolicy("randaugment", "RandAugment on the Pillow-exact kernels, stateless "
                                           "draws from --seed", batch_augmentation=_randaugment))
register(AugmentationPolicy("trivialaugment", "TrivialAugment Wide on the Pillow-exact kernels, "
                                              "stateless draws from --seed",
                            batch_augmentation=_trivialaugment))
register(AugmentationPolicy("cutout", "base preprocessing + Cutout"))
register(AugmentationPolicy("none", "base preprocessing only (no Cutout)", uses_cutout=False))
