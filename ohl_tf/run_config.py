"""A run's settings: one frozen `Config`, whose fields are the flags of `python -m ohl_tf.main`.

Each field carries its default and its help text; `define_flags` makes one absl flag per field
(so a flag, its default and its help have one home), `from_flags` reads them back, and
`Config.__post_init__` is the only place a setting is validated, whether it came from the command
line, a flagfile or Python.

Defaults are the paper's where it has one (section 4.1: θ's Adam at 0.05, Cutout 16, its
estimator), else general ones; the quick run's demo settings live in flags/quickstart.cfg only.
"""

import dataclasses
import os
import re
import types
import typing

from absl import flags

import models
from ohl_tf import augment
from ohl_tf import augmentation_policies
from ohl_tf import cluster as cluster_lib
from ohl_tf import datasets
from ohl_tf import estimators
from ohl_tf import pipeline
from ohl_tf import trajectory


# Below -15 σ(θ) is e^θ to float32's precision, above 15 within 3e-7 of 1: wider starts add nothing.
THETA_INIT_RANGE = (-15.0, 15.0)


def _setting(default, help_text):
  """A `Config` field with the help text of its flag."""
  return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class Config:
  """A run's settings (see each field's help, also `python -m ohl_tf.main --help`)."""
  dataset: str = _setting("synthetic", datasets.flag_help())
  data_dir: str | None = _setting(None, "tensorflow-datasets data directory.")
  image_size: int = _setting(
      0, "imagenet2012: side of the training and evaluation crops; folder: resize every image "
         "to this square; 0 = the dataset's own (ImageNet 224).")
  model: str = _setting("resnet8", "Model: " + " | ".join(models.names()) + ".")
  policy: str = _setting("ohl", augmentation_policies.flag_help())
  search_space: str = _setting(
      "paper", "The elements of the OHL operations: " + " | ".join(augment.SEARCH_SPACES) +
               ". paper: the paper's 36 (Table 1), 1296 operations; paper_identity: the same 36 "
               "plus Identity as element 36, 1369 operations, among them (Identity, Identity), "
               "no operation; autoaugment_cifar10: the 41 distinct slots (operation, level, "
               "probability) of AutoAugment's CIFAR-10 sub-policies, each applied with its "
               "probability, plus Identity, 1764 operations (both beyond the paper; "
               "docs/search_space.md). A run resumes and a --policy=file: reads a policy.json "
               "only in the space it was learned in.")
  trajectories: int = _setting(4, "N, copies of the network.")
  epochs: int = _setting(10, "Training epochs (warm-up included).")
  inner_steps: int = _setting(0, "I, inner steps per outer step; 0 = one epoch.")
  batch_size: int = _setting(128, "Batch of one trajectory (all its replicas).")
  lr: float = _setting(0.1, "Peak learning rate (cosine decay to 0 after the warm-up).")
  momentum: float = _setting(0.9, "SGD momentum.")
  nesterov: bool = _setting(False, "Nesterov momentum.")
  warmup_epochs: int = _setting(
      0, "Linear warm-up epochs, counted inside --epochs: the cosine decay spans the rest "
         "(for a warm-up on top of E epochs of decay, set --epochs to E + the warm-up).")
  warmup_lr: float = _setting(0.0, "Learning rate at the start of the warm-up.")
  weight_decay: float = _setting(5e-4, "L2 weight decay.")
  theta_lr: float = _setting(estimators.THETA_LEARNING_RATE,
                             "Adam learning rate of θ (paper: 0.05); > 0.")
  theta_init: float = _setting(
      0.0, "The value every θ_k starts at (paper: 0). The start is the uniform policy whatever "
           "it is; it sets how far eq. 7 lets an operation's weight σ(θ_k) grow: at most 2x at 0, "
           "about e^|x| (as under a softmax) at a negative x (docs/search_space.md); "
           f"{THETA_INIT_RANGE[0]:g} to {THETA_INIT_RANGE[1]:g}, --policy=ohl only.")
  reward: str = _setting(
      "accuracy", "What scores a trajectory: " + " | ".join(estimators.REWARDS) + ". accuracy: "
                  "validation accuracy (paper); loss: minus the validation cross-entropy "
                  "(keeps ranking when accuracies tie).")
  estimator: str = _setting(
      estimators.names()[0], "How the outer step estimates θ's gradient: " +
      estimators.flag_help() + ". Only --policy=ohl learns θ.")
  es_sigma: float = _setting(
      1.0, "element_es: scale σ of the element perturbations θ_n = θ + σAε_n; > 0.")
  es_groups: str = _setting(
      estimators.ES_GROUPS[0], "element_es: what one coordinate of ε perturbs: " +
      " | ".join(estimators.ES_GROUPS) + ". elements: each element; operations: each operation "
      "with all its elements (magnitudes, levels, probabilities) together, fewer coordinates "
      "with more evidence each (beyond the paper; docs/estimators.md).")
  cutout: int = _setting(16, "Cutout square side (0 = off).")
  augment_path: str = _setting(
      "batched", "Where the sampled OHL operations are applied: " + " | ".join(
          pipeline.AUGMENT_PATHS) + ". batched: per batch (tf.dynamic_partition by kernel); "
      "per_image: in the per-image tf.data map (tf.switch_case). The same bytes either way; "
      "docs/benchmarks.md, Augmentation throughput, says which is faster where.")
  augment_on: str = _setting(
      "host", "Where each batch's sampled OHL operations, Cutout and standardisation run: " +
      " | ".join(pipeline.AUGMENT_ON) + ". host: in the tf.data pipeline; device: in each "
      "replica's training step on its own device, the host only decoding, cropping, flipping and "
      "drawing (uint8 to the device). The same bytes either way; device needs "
      "--augment_path=batched. docs/benchmarks.md, Augmentation on the device, says which to pick.")
  val_size: int = _setting(500, "Validation images held out of the training split (folder: "
                                "chosen from ROOT/val beside ROOT/train and ROOT/test).")
  test_size: int = _setting(
      500, "folder: in the ROOT/<class> layout, images held out of the folder as the test split "
           "(seeded by --seed, before --val_size; 0 = no test split); unused where the folder "
           "has its own (ROOT/test, ROOT/val, ROOT/validation) and by other datasets.")
  folder_stream: str = _setting(
      "auto", "folder: " + " | ".join(datasets.STREAM_CHOICES) + ". never: decode every image "
              "into memory at start-up; always: read the images from their files as training "
              "runs; auto: stream when the folder has more than "
              f"{datasets.STREAM_ABOVE_FILES:,} images or would take "
              f"{datasets.STREAM_ABOVE_BYTES >> 30} GiB decoded.")
  train_subset: int = _setting(
      0, "Use only this many training images (0 = all), e.g. reduced CIFAR-10.")
  eval_batch_size: int = _setting(500, "Evaluation batch size.")
  figure_interval_secs: float = _setting(
      60.0, "TensorBoard's figures (p_θ, element marginals, lineage: about a second of CPU "
            "each outer step) at most this often, in seconds, and after the last outer step; 0: "
            "after every outer step. Scalars, histograms and text: after every outer step.")
  model_dir: str = _setting("", "Where the run lives; rerun to resume. Empty: "
                                "runs/<dataset>_<model>.")
  seed: int = _setting(0, "Seed of every random choice of the run.")
  deterministic: bool = _setting(
      False, "Deterministic kernels (tf.config.experimental.enable_op_determinism).")
  precision: str = _setting(
      "float32", "Arithmetic of the trajectories' networks: " + " | ".join(trajectory.PRECISIONS)
                 + ". The mixed ones (Keras dtype policies) compute in bfloat16 or float16 with "
                 "float32 variables, logits and loss; mixed_float16 adds dynamic loss scaling. "
                 "θ, BatchNorm statistics, checkpoints and the exported SavedModel stay float32.")
  jit_compile: bool = _setting(
      False, "Compile each replica's forward and backward pass with XLA "
             "(tf.function(jit_compile=True)); the augmentation stays outside that compilation "
             "either way.")
  cpu_devices: int = _setting(1, "Split the CPU into this many logical devices (tests, no GPU).")
  overwrite: bool = _setting(False,
                             "Delete a run with another configuration found in --model_dir.")
  cluster: str = _setting(
      "auto", "Several machines (docs/several_machines.md): "
              + " | ".join(cluster_lib.CLUSTERS) + ". auto: TF_CONFIG if it names several tasks, "
              "else a Slurm step of several tasks, else none (one process).")
  cluster_timeout: int = _setting(
      3600, "Seconds a worker waits at an outer step for the others (or for the start and the "
            "end) before it gives up; dead or stopped workers are noticed within seconds.")

  def __post_init__(self):
    if not self.model_dir:
      object.__setattr__(self, "model_dir", default_model_dir(self.dataset, self.model))
    augmentation = augmentation_policies.parse(self.policy)
    augment.search_space(self.search_space)
    if self.search_space != augment.PAPER.name and not augmentation.samples_operations:
      raise ValueError(f"--search_space only applies to the policies that sample OHL operations "
                       f"({', '.join(augmentation_policies.sampling_names())}); leave it at "
                       f"{augment.PAPER.name!r} for --policy={self.policy}. Received: "
                       f"--policy={self.policy}, --search_space={self.search_space}")
    datasets.check_spec(self.dataset)
    _check_choice("model", self.model, models.names())
    _check_choice("reward", self.reward, estimators.REWARDS)
    estimators.get(self.estimator)
    _check_choice("precision", self.precision, trajectory.PRECISIONS)
    pipeline.check_augmentation_placement(self.augment_path, self.augment_on, as_flags=True)
    _check_choice("cluster", self.cluster, cluster_lib.CLUSTERS)
    _check_choice("folder_stream", self.folder_stream, datasets.STREAM_CHOICES)
    for name in ("trajectories", "epochs", "batch_size", "eval_batch_size", "cpu_devices",
                 "cluster_timeout"):
      if getattr(self, name) < 1:
        raise ValueError(f"--{name} must be >= 1. Received: --{name}={getattr(self, name)}")
    for name in ("inner_steps", "cutout", "train_subset", "test_size", "warmup_epochs",
                 "image_size", "figure_interval_secs"):
      if getattr(self, name) < 0:
        raise ValueError(f"--{name} must be >= 0. Received: --{name}={getattr(self, name)}")
    for name in ("theta_lr", "es_sigma"):
      if not getattr(self, name) > 0:  # a negative theta_lr would descend on the reward
        raise ValueError(f"--{name} must be > 0. Received: --{name}={getattr(self, name)}")
    augmentation.estimator(self.estimator).check_trajectories(self.trajectories)
    _check_theta_init(self.theta_init, augmentation)
    _check_es_groups(self.es_groups, self.estimator, augmentation)


def _check_es_groups(es_groups, estimator, augmentation):
  _check_choice("es_groups", es_groups, estimators.ES_GROUPS)
  if es_groups != estimators.ES_GROUPS[0] and augmentation.estimator(estimator).name != (
      "element_es"):
    raise ValueError(f"--es_groups applies only to --estimator=element_es with a policy that "
                     f"learns θ (--policy=ohl); leave it at {estimators.ES_GROUPS[0]!r} here. "
                     f"Received: --es_groups={es_groups}, --estimator={estimator}, "
                     f"--policy={augmentation.spec}")


def _check_theta_init(theta_init, augmentation):
  low, high = THETA_INIT_RANGE
  if not low <= theta_init <= high:  # also refuses nan
    raise ValueError(f"--theta_init must be in [{low:g}, {high:g}]. "
                     f"Received: --theta_init={theta_init}")
  if theta_init != 0 and not augmentation.learns_theta:
    raise ValueError(f"--theta_init applies only to a policy that learns θ (--policy=ohl); leave "
                     f"it at 0 for --policy={augmentation.spec}. Received: "
                     f"--theta_init={theta_init:g}")


def _check_choice(name, value, choices):
  if value not in choices:
    raise ValueError(f"--{name} must be one of {', '.join(choices)}. "
                     f"Received: --{name}={value}")


def default_model_dir(dataset, model):
  """runs/<dataset>_<model>, the dataset spec reduced to a folder name ("folder:/data/pets"
  gives runs/folder_data_pets_resnet20)."""
  name = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{dataset}_{model}").strip("_")
  return os.path.join("runs", name)


# ---------------------------------------------------------------------------------------------
# The flags.
# ---------------------------------------------------------------------------------------------

_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           str: flags.DEFINE_string}


def _value_type(field):
  """The field's type, with `X | None` read as X."""
  if isinstance(field.type, types.UnionType):
    return next(t for t in typing.get_args(field.type) if t is not type(None))
  return field.type


def define_flags(flag_values=flags.FLAGS):
  """Defines one flag per `Config` field: its name, type, default and help text."""
  for field in dataclasses.fields(Config):
    _DEFINE[_value_type(field)](field.name, field.default, field.metadata["help"],
                                flag_values=flag_values)


def from_flags(flag_values=flags.FLAGS):
  """The `Config` of the parsed flags (raises ValueError naming an invalid one)."""
  return Config(**{field.name: flag_values[field.name].value
                   for field in dataclasses.fields(Config)})
