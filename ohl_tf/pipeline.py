"""Input pipelines of the OHL loop (DESIGN.md sections 3 and 4).

Training: for one trajectory and one period of the online loop, a `tf.data` pipeline that yields
(image, label, op): each image gets its base preprocessing and an operation (and signs) sampled
per image from p_θ (paper eq. 7; the op index travels with the image so the outer step counts
exactly what was applied) in the per-image map; the operations, Cutout and standardisation then
run on the batch (the batched path of `augment`, with per-image parameters).

Every random choice is a pure function of the run's seed and the example's position in the run,
so a period can be replayed after a restart. Within a period all trajectories see the same images
in the same order with the same flip and crop (one shuffle per epoch, seeded by the run); they
differ only in what DESIGN.md section 4 allows to differ: the sampled operations, their signs and
Cutout (the reward must come from the operations, not from anything else that separates them).
"""

import dataclasses
import functools
import math

import tensorflow as tf

from ohl_tf import augment
from ohl_tf import policy
from ohl_tf import preprocess

# Independent random streams, folded into the run's seed.
_SHUFFLE_STREAM, _BASE_STREAM, _AUGMENT_STREAM, _CUTOUT_STREAM = 1, 2, 3, 4
NO_OPERATION = -1  # the op of an image that got none (--policy=none)


@dataclasses.dataclass(frozen=True)
class Schedule:
  """How the run's training steps divide into epochs and periods of I inner steps.

  Attributes:
    num_examples: training images (the validation split already removed).
    batch_size: images per step of one trajectory (over all its replicas).
    epochs: passes over the training images.
    inner_steps: I, inner steps per outer step (paper Algorithm 1); 0 means one epoch.
  """
  num_examples: int
  batch_size: int
  epochs: int
  inner_steps: int = 0

  def __post_init__(self):
    if self.batch_size < 1 or self.epochs < 1 or self.inner_steps < 0:
      raise ValueError(f"Invalid schedule: {self}")
    if self.num_examples < self.batch_size:
      raise ValueError(f"--batch_size={self.batch_size} exceeds the {self.num_examples} training "
                       "images (after the validation split): lower it or use more data.")

  @property
  def steps_per_epoch(self):
    return self.num_examples // self.batch_size  # the remainder of each epoch is dropped

  @property
  def total_steps(self):
    return self.epochs * self.steps_per_epoch

  @property
  def period_steps(self):
    return self.inner_steps or self.steps_per_epoch

  @property
  def num_periods(self):
    return math.ceil(self.total_steps / self.period_steps)

  def period(self, index):
    """(first step, end step) of period `index`; the last period may be shorter."""
    if not 0 <= index < self.num_periods:
      raise ValueError(f"period {index} outside [0, {self.num_periods})")
    start = index * self.period_steps
    return start, min(start + self.period_steps, self.total_steps)


def _seed(seed, *keys):
  """A [2] seed for the stream named by `keys` (ints or int tensors)."""
  seed = tf.cast(tf.stack([seed, 0]), tf.int64)
  for key in keys:
    seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(key, tf.int64))
  return seed


def source_tensors(images, labels):
  """Holds a split in memory once for all pipelines (by handle, not copied into each graph)."""
  with tf.device("/cpu:0"):
    return (tf.Variable(images, trainable=False, name="images"),
            tf.Variable(labels, trainable=False, name="labels"))


@dataclasses.dataclass(frozen=True)
class TrainPipeline:
  """The training data of the run, from which each (period, trajectory) draws its batches.

  Attributes:
    images: uint8 [N,H,W,3] variable from `source_tensors`.
    labels: int [N] variable.
    schedule: the run's `Schedule`.
    mean, std: per-channel statistics of the dataset, [0, 255] units.
    seed: the run's seed.
    cutout_size: side of the Cutout square (0 disables it).
  """
  images: tf.Variable
  labels: tf.Variable
  schedule: Schedule
  mean: tuple
  std: tuple
  seed: int
  cutout_size: int = 16

  def __post_init__(self):
    # Traced once per pipeline, not once per (period, trajectory) dataset: each period's map
    # only calls these concrete functions.
    spec = [tf.TensorSpec([], tf.int64), tf.TensorSpec([augment.NUM_OPERATIONS], tf.float32),
            tf.TensorSpec([], tf.int32)]
    object.__setattr__(self, "_augmented", tf.function(self._example, input_signature=spec))
    object.__setattr__(self, "_plain", tf.function(
        lambda example_id, trajectory: self._example(example_id, None, trajectory),
        input_signature=[spec[0], spec[2]]))
    # Traced once for each value of its Python argument `augmented`.
    object.__setattr__(self, "_finished_batch", tf.function(self._finish_batch))

  def _example(self, example_id, log_probs, trajectory):
    """One example before Cutout; `example_id` counts images since the start of the run."""
    epoch_size = self.schedule.steps_per_epoch * self.schedule.batch_size
    epoch, position = example_id // epoch_size, example_id % epoch_size
    index = tf.random.experimental.index_shuffle(
        position, _seed(self.seed, _SHUFFLE_STREAM, epoch), self.schedule.num_examples - 1)
    image = preprocess.cifar_train_base(tf.gather(self.images, index),
                                        _seed(self.seed, _BASE_STREAM, example_id))
    if log_probs is None:
      op, signs = tf.constant(NO_OPERATION, tf.int32), tf.ones([2], tf.int32)
    else:
      op_seed, sign_seed = tf.unstack(tf.random.experimental.stateless_split(
          _seed(self.seed, _AUGMENT_STREAM, trajectory, example_id), 2))
      op = tf.random.stateless_categorical(log_probs[None], 1, op_seed, dtype=tf.int32)[0, 0]
      signs = augment.sample_signs([2], sign_seed)
    return image, tf.gather(self.labels, index), op, signs, example_id

  def _finish_batch(self, images, labels, ops, signs, example_ids, trajectory, augmented):
    """The sampled operations, Cutout (one square per image) and standardisation, per batch.

    Each image keeps its own op, signs and Cutout square: the batched path of `augment` gives
    the bytes of the per-image path (tests/augment_test.py) at 2-3x its throughput on the CPU
    (benchmarks/augment_throughput.py).
    """
    if augmented:
      images = augment.apply_operation(images, ops, signs)
    if self.cutout_size:
      seed = _seed(self.seed, _CUTOUT_STREAM, trajectory, example_ids[0])
      images = preprocess.cutout(images, seed, self.cutout_size,
                                 fill=preprocess.mean_colour(self.mean))
    return preprocess.normalize(images, self.mean, self.std), labels, ops

  def dataset(self, period, trajectory, theta=None):
    """The batches of one trajectory in one period.

    Args:
      period: index of the period (outer step).
      trajectory: index of the trajectory; selects its own operations, signs and Cutout.
      theta: θ [1296] to sample operations from (eq. 7), or None for no operation.

    Returns:
      A dataset of (float32 images [B,H,W,3], int labels [B], int32 ops [B]).
    """
    start, end = self.schedule.period(period)
    batch = self.schedule.batch_size
    log_probs = None if theta is None else policy.log_operation_probabilities(
        tf.convert_to_tensor(theta, tf.float32))
    trajectory = tf.constant(trajectory, tf.int32)
    example = (functools.partial(self._plain, trajectory=trajectory) if log_probs is None else
               functools.partial(self._augmented, log_probs=log_probs, trajectory=trajectory))
    examples = tf.data.Dataset.range(start * batch, end * batch)
    examples = examples.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = examples.batch(batch, drop_remainder=True).map(
        functools.partial(self._finished_batch, trajectory=trajectory,
                          augmented=log_probs is not None),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    # Per-image work is small: intra-op threads only contend with the training step's.
    options.threading.max_intra_op_parallelism = 1
    return batches.prefetch(tf.data.AUTOTUNE).with_options(options)


def eval_dataset(images, labels, batch_size, mean, std):
  """Unaugmented, standardised batches of a split, in order (the last batch may be smaller)."""
  dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
  return dataset.map(lambda x, y: (preprocess.normalize(x, mean, std), y),
                     num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
