"""Input pipelines of the OHL loop (docs/pipeline.md, docs/loop.md).

Training: for one trajectory, from the period the run starts (or resumes) at to its end, one
`tf.data` pipeline of `batch.Batch`es (images, labels, ops and what remains to apply), each period's
images sampled from the log p its `SamplingFeed` hands over. The examples come from a source
(`MemorySource` for arrays in memory, `FileSource` for a folder's image files, `StreamSource` for
ImageNet's tfds records); each image gets its base preprocessing and, under an OHL policy, an
operation (and signs) sampled per image from p (paper eq. 7; the op index travels with the image so
the outer step counts exactly what was applied) in the per-image map. The operation is applied
either in that map (`augment_path="per_image"`: `tf.switch_case` over the kernels, the design's
per-image path) or per batch (`"batched"`: `tf.dynamic_partition` by kernel); both run the same
kernels with the same per-image parameters, so they give the same bytes. A fixed batch augmentation
(AutoAugment, RandAugment, TrivialAugment: `ohl_tf.augmentation_policies`), Cutout and
standardisation then run on the batch.

Where the batch's sampled operation, Cutout and standardisation run is `augment_on`: "host", in
this `tf.data` pipeline, which then yields finished float32 batches; or "device", in each
replica's training step on its own device (`TrainPipeline.device_augmentation`, called by
`trajectory.Trajectory`), the pipeline then yielding uint8 images with the per-image parameters
(op, signs, Cutout centre) drawn here from the same seeds: the same bytes reach the network.

Every random choice is a pure function of the run's seed and the example's position in the
run, so a period can be replayed after a restart. Within a period all trajectories see the same
images in the same order with the same flip and crop (one shuffle per epoch, seeded by the run);
they differ only in what docs/loop.md allows to differ: the sampled operations, their signs and
Cutout (the reward must come from the operations, not from anything else that separates them).
"""

import dataclasses
import functools
import math

import numpy as np
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import batch as batch_lib
from ohl_tf import policy
from ohl_tf import preprocess
from ohl_tf import schedule as schedule_lib

# Independent random streams, folded into the run's seed.
_SHUFFLE_STREAM, _BASE_STREAM, _AUGMENT_STREAM, _CUTOUT_STREAM = 1, 2, 3, 4
NO_OPERATION = -1  # the op of an image that got no OHL operation (every policy but OHL's)
# Where the sampled OHL operation is applied: in the per-image map, or per batch.
AUGMENT_PATHS = ("batched", "per_image")
# Where the batch's sampled operation, Cutout and standardisation run: in the host's tf.data
# pipeline, or in each replica's training step on its own device.
AUGMENT_ON = ("host", "device")


def check_augmentation_placement(augment_path, augment_on, as_flags=False):
  """Raises ValueError unless `augment_path` is one of `AUGMENT_PATHS`, `augment_on` one of
  `AUGMENT_ON`, and they can hold together: augment_on="device" applies the operations to each
  replica's batch, so it needs the batched path.

  The message names the settings as arguments (augment_on='device'), or as flags
  (--augment_on=device) with `as_flags` (`run_config.Config`).
  """
  name = (lambda key: f"--{key}") if as_flags else (lambda key: key)
  setting = ((lambda key, value: f"--{key}={value}") if as_flags else
             (lambda key, value: f"{key}={value!r}"))
  for key, value, choices in (("augment_path", augment_path, AUGMENT_PATHS),
                              ("augment_on", augment_on, AUGMENT_ON)):
    if value not in choices:
      raise ValueError(f"{name(key)} must be one of {', '.join(choices)}. "
                       f"Received: {setting(key, value)}")
  if augment_on == "device" and augment_path == "per_image":
    raise ValueError(
        f"{setting('augment_on', 'device')} applies the sampled operations to each replica's "
        f"batch in the training step, {setting('augment_path', 'per_image')} to each image in "
        f"the host's tf.data map: they cannot both hold. Use {setting('augment_on', 'device')} "
        f"with {setting('augment_path', 'batched')} (the default), or "
        f"{setting('augment_path', 'per_image')} with {setting('augment_on', 'host')} (the "
        "default).")


def _seed(seed, *keys):
  """A [2] seed for the stream named by `keys` (ints or int tensors)."""
  seed = tf.cast(tf.stack([seed, 0]), tf.int64)
  for key in keys:
    seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(key, tf.int64))
  return seed


# ---------------------------------------------------------------------------------------------
# Sources: the run's training examples, (example id, uint8 image, int32 label), in the order of
# the run. Example id e is position e % E of epoch e // E (E images an epoch); an epoch's order
# is a pure function of the run's seed and the epoch.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MemorySource:
  """Training images held in memory (`datasets.ImageDataset`), shuffled by index per epoch.

  Attributes:
    images: uint8 [N,H,W,3] variable (`from_arrays`).
    labels: int32 [N] variable.
  """
  images: tf.Variable
  labels: tf.Variable

  @classmethod
  def from_arrays(cls, images, labels):
    """Holds a split in memory once for all pipelines (by handle, not copied into each graph)."""
    with tf.device("/cpu:0"):
      return cls(tf.Variable(images, trainable=False, name="images"),
                 tf.Variable(labels, trainable=False, name="labels"))

  @property
  def num_examples(self):
    return int(self.images.shape[0])

  @property
  def image_spec(self):
    return tf.TensorSpec(self.images.shape[1:], tf.uint8)

  def examples(self, start, end, epoch_size, seed):
    def gather(example_id):
      index = _epoch_index(example_id, epoch_size, seed, self.num_examples)
      return example_id, tf.gather(self.images, index), tf.gather(self.labels, index)
    return tf.data.Dataset.range(start, end).map(gather, num_parallel_calls=tf.data.AUTOTUNE,
                                                 deterministic=True)


def _epoch_index(example_id, epoch_size, seed, num_examples):
  """The index of the training image at example id `example_id`: position id % E of epoch
  id // E in that epoch's seeded shuffle of the `num_examples` images (E = `epoch_size`)."""
  epoch, position = example_id // epoch_size, example_id % epoch_size
  return tf.random.experimental.index_shuffle(position, _seed(seed, _SHUFFLE_STREAM, epoch),
                                              num_examples - 1)


@dataclasses.dataclass(frozen=True)
class FileSource:
  """Training images read from their files as the run goes (`datasets.FolderStream`).

  The order is `MemorySource`'s over the list of files (the same `_epoch_index`), and an image is
  decoded after it is chosen: a folder streamed gives the batches of the same folder held in
  memory, and a period that starts inside an epoch reads none of the files before it.

  Attributes:
    paths: string [N] variable of the files (`from_files`).
    labels: int32 [N] variable.
    decode: fn(string path) -> uint8 image of `image_shape`, e.g. `FolderStream.decode`.
    image_shape: (H, W, 3) of every decoded image.
  """
  paths: tf.Variable
  labels: tf.Variable
  decode: object
  image_shape: tuple

  @classmethod
  def from_files(cls, paths, labels, decode, image_shape):
    """Holds the file list once for all pipelines (by handle, not copied into each graph)."""
    with tf.device("/cpu:0"):
      return cls(tf.Variable(list(paths), trainable=False, name="paths"),
                 tf.Variable(labels, trainable=False, name="labels"), decode, tuple(image_shape))

  @property
  def num_examples(self):
    return int(self.paths.shape[0])

  @property
  def image_spec(self):
    return tf.TensorSpec(self.image_shape, tf.uint8)

  def examples(self, start, end, epoch_size, seed):
    def read(example_id):
      index = _epoch_index(example_id, epoch_size, seed, self.num_examples)
      return (example_id, self.decode(tf.gather(self.paths, index)),
              tf.gather(self.labels, index))
    return tf.data.Dataset.range(start, end).map(read, num_parallel_calls=tf.data.AUTOTUNE,
                                                 deterministic=True)


@dataclasses.dataclass(frozen=True)
class StreamSource:
  """Training records streamed from tfds (`datasets.StreamingDataset`), shuffled per epoch.

  A period that starts inside an epoch re-reads that epoch's shuffled records and skips the
  ones before it; records are decoded only after the skip, but skipping still reads them, so
  periods of a whole epoch (--inner_steps=0) suit ImageNet best.
  """
  data: object  # datasets.StreamingDataset

  @property
  def num_examples(self):
    return self.data.num_train

  @property
  def image_spec(self):
    return tf.TensorSpec([None, None, 3], tf.uint8)

  def examples(self, start, end, epoch_size, seed):
    parts = []
    for epoch in range(start // epoch_size, (end - 1) // epoch_size + 1):
      first, last = max(start, epoch * epoch_size), min(end, (epoch + 1) * epoch_size)
      shuffle_seed = int(
          np.random.SeedSequence([seed, _SHUFFLE_STREAM, epoch]).generate_state(1)[0])
      records = self.data.train_epoch(shuffle_seed).skip(first - epoch * epoch_size)
      parts.append(tf.data.Dataset.zip(tf.data.Dataset.range(first, last), records))
    examples = functools.reduce(tf.data.Dataset.concatenate, parts)
    return examples.map(
        lambda example_id, record: (example_id, self.data.decode(record[0]),
                                    tf.cast(record[1], tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


# ---------------------------------------------------------------------------------------------
# The training pipeline.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainPipeline:
  """The training data of the run, from which each (period, trajectory) draws its batches.

  Attributes:
    source: a `MemorySource`, `FileSource` or `StreamSource`.
    schedule: the run's `schedule.Schedule`.
    mean, std: per-channel statistics of the dataset, [0, 255] units (std None: subtract only).
    seed: the run's seed.
    cutout_size: side of the Cutout square (0 disables it).
    base: fn(uint8 image [H,W,3], seed [2]) -> uint8 [S,S,3], the base preprocessing
      (docs/pipeline.md: `preprocess.cifar_train_base` or `preprocess.imagenet_train_base`).
    augment_batch: optional fn(uint8 images [B,S,S,3], seed [2]) -> uint8 images, a fixed
      augmentation applied per batch (AutoAugment, RandAugment, TrivialAugment); the OHL
      operations instead come from the log p that the `SamplingFeed` of `run_dataset` hands over.
    augment_path: where the sampled OHL operations are applied, one of `AUGMENT_PATHS`:
      "per_image" in the per-image map (`tf.switch_case`), "batched" after batching
      (`tf.dynamic_partition`). The same bytes either way; which is faster depends on the
      machine (docs/benchmarks.md, *Augmentation throughput*).
    augment_on: where the batch's sampled operation (batched path), Cutout and standardisation
      run, one of `AUGMENT_ON`: "host", in this pipeline, which yields float32 images; "device",
      in each replica's training step (`device_augmentation`), the pipeline yielding uint8
      images (a quarter of float32's host-to-device traffic) with the per-image op, signs and
      Cutout centre drawn here from the same seeds, so the network sees the same bytes. The base
      preprocessing, the drawing and a fixed `augment_batch` stay on the host. "device" needs
      the batched path: the per-image path applies the operation in the host's map.
    search_space: the `augment.SearchSpace` of the sampled operations (--search_space; the
      paper's by default): the log p fed per period has its K entries.
  """
  source: MemorySource | FileSource | StreamSource
  schedule: schedule_lib.Schedule
  mean: tuple
  std: tuple | None
  seed: int
  cutout_size: int = 16
  base: object = preprocess.cifar_train_base
  augment_batch: object = None
  augment_path: str = "batched"
  augment_on: str = "host"
  search_space: augment.SearchSpace = augment.PAPER

  def __post_init__(self):
    check_augmentation_placement(self.augment_path, self.augment_on)
    # Traced once per pipeline, not once per (first period, stream) dataset: each dataset's map
    # only calls these concrete functions.
    spec = [tf.TensorSpec([], tf.int64), self.source.image_spec, tf.TensorSpec([], tf.int32),
            tf.TensorSpec([self.search_space.num_operations], tf.float32),
            tf.TensorSpec([], tf.int32)]
    object.__setattr__(self, "_sampled", tf.function(self._example, input_signature=spec))
    object.__setattr__(self, "_plain", tf.function(
        lambda example_id, image, label, stream: self._example(example_id, image, label, None,
                                                               stream),
        input_signature=spec[:3] + spec[4:]))
    # Traced once for each value of its Python argument `sampled`.
    object.__setattr__(self, "_finished_batch", tf.function(self._finish_batch))

  @property
  def epoch_size(self):
    return self.schedule.steps_per_epoch * self.schedule.batch_size

  def _example(self, example_id, image, label, log_probs, stream):
    """One example before Cutout; `example_id` counts images since the start of the run.

    The operation and signs are drawn here on both paths (so both draw the same ones); the
    per-image path also applies the operation here.
    """
    image = self.base(image, _seed(self.seed, _BASE_STREAM, example_id))
    if log_probs is None:
      op, signs = tf.constant(NO_OPERATION, tf.int32), tf.ones([2], tf.int32)
    else:
      op_seed, sign_seed = tf.unstack(tf.random.experimental.stateless_split(
          _seed(self.seed, _AUGMENT_STREAM, stream, example_id), 2))
      op = policy.draw_operations(log_probs, 1, op_seed)[0]
      signs = augment.draw_signs(op, sign_seed, self.search_space)
      if self.augment_path == "per_image":
        image = augment.apply_drawn_operation(image, op, signs,  # drawn in range
                                              self.search_space)
    return image, label, op, signs, example_id

  def _finish_batch(self, images, labels, ops, signs, example_ids, stream, sampled):
    """The host's part of a batch: under "host" the augmentation (batched path), Cutout (one
    square per image) and standardisation, giving a finished `batch.Batch` of float32 images;
    under "device" only the fixed `augment_batch` and the drawing of the Cutout centres, giving a
    `batch.Batch` of uint8 images with the per-image parameters for `device_augmentation`.

    Each image keeps its own op, signs and Cutout square: the batched path of `augment` gives
    the bytes of the per-image path (tests/augment_test.py, tests/pipeline_test.py), and a
    replica's shard of a batch gets the bytes of the same images of the whole batch.
    """
    if sampled and self.augment_path == "batched" and self.augment_on == "host":
      images = augment.apply_operation(images, ops, signs, space=self.search_space)
    if self.augment_batch is not None:
      images = self.augment_batch(images, _seed(self.seed, _AUGMENT_STREAM, stream,
                                                example_ids[0], -1))
    parameters = {"signs": signs}
    if self.cutout_size:
      # One draw per batch, from the batch's seed, on either side: the same squares.
      shape = tf.shape(images)
      rows, cols = preprocess.sample_cutout_centres(
          shape[0], shape[1], shape[2], _seed(self.seed, _CUTOUT_STREAM, stream, example_ids[0]))
      parameters["cutout_centres"] = tf.stack([rows, cols], axis=-1)
    if self.augment_on == "device":
      return batch_lib.Batch(images, labels, ops, parameters)
    return batch_lib.Batch(self._cutout_and_normalize(images, parameters), labels, ops, {})

  def _cutout_and_normalize(self, images, parameters):
    """Paints each image's Cutout square (if any) and standardises: uint8 in, float32 out."""
    if self.cutout_size:
      rows, cols = tf.unstack(parameters["cutout_centres"], axis=-1)
      images = preprocess.paint_cutout(images, rows, cols, self.cutout_size,
                                       fill=preprocess.mean_colour(self.mean))
    return preprocess.normalize(images, self.mean, self.std)

  def device_augmentation(self, sampled):
    """What a replica's training step does to its shard of a batch under augment_on="device".

    The step runs the returned function on the replica's own device, before its forward pass
    and outside XLA (`trajectory.Trajectory`, `finish_batch`): XLA would reorder the float
    arithmetic of the blends and the standardisation, so the bytes would no longer be the host's,
    and `tf.dynamic_partition`'s data-dependent shapes do not compile. Each replica gets its
    shard of every per-image tensor, so its images get their own op, signs and Cutout square.
    Ops without a kernel for that device (on a GPU, possibly some of the kernels' integer ops)
    run on the host CPU under TensorFlow's soft placement; this was tested on logical CPU
    devices only, never on a GPU.

    Args:
      sampled: whether the batches carry sampled OHL operations to apply (the policy samples
        them); without, the ops are `NO_OPERATION` and only Cutout and standardisation run.

    Returns:
      None under augment_on="host" (the batches arrive finished), else fn(`batch.Batch`) ->
      its finished `batch.Batch`, for a replica's shard of a batch of this pipeline.
    """
    if self.augment_on == "host":
      return None

    def finish(shard):
      images = shard.images
      if sampled:  # drawn here in range: no run-time checks (Assert ops run on the host)
        images = augment.apply_drawn_operation(images, shard.ops, shard.augmentation["signs"],
                                               self.search_space)
      return batch_lib.Batch(self._cutout_and_normalize(images, shard.augmentation),
                             shard.labels, shard.ops, {})
    return finish

  def run_dataset(self, first_period, stream, feed=None):
    """The batches of one trajectory from `first_period` to the end of the run: one input
    pipeline that persists across periods (no restart per outer step).

    Each period's images are sampled from the log p that `feed` hands over for that period: the
    pipeline takes one log p per period, in order, and waits for it, so it prefetches freely
    within a period but never samples an image of the next period before the outer step has
    given its θ. A period's op counts are thus exactly what its steps applied, with its θ. A
    period's batches depend only on the seed, the period, `stream` and its log p: a run that
    resumes at a period gets the batches of one that went through it. When the feed is closed
    (`SamplingFeed.close`) the dataset ends at the period whose log p it lacks.

    Args:
      first_period: the period the run starts (or resumes) at.
      stream: index of the random streams of its operations, signs and Cutout: the
        trajectory's index, or one that several trajectories share (common random numbers:
        `search` gives element_es's antithetic pairs one each).
      feed: a `SamplingFeed` of log p [K] of the operations of `search_space` to sample
        (paper eq. 7; K = 1296 in the paper's space), or None for no OHL operation.

    Returns:
      A dataset of `batch.Batch`es of B = `schedule.batch_size` images: finished (float32
      images) under augment_on="host"; under "device", uint8 images with the per-image
      parameters for `device_augmentation`.
    """
    batch = self.schedule.batch_size
    periods = range(first_period, self.schedule.num_periods)
    start, end = self.schedule.period(first_period)[0], self.schedule.total_steps
    examples = self.source.examples(start * batch, end * batch, self.epoch_size, self.seed)
    if feed is not None:
      images_per_period = tf.constant(
          [batch * (end - start) for start, end in map(self.schedule.period, periods)], tf.int64)
      # One log p per period, taken when the period's first image is sampled, and repeated for
      # each of its images.
      per_image = tf.data.Dataset.range(len(periods)).map(
          lambda index: (feed.take(), images_per_period[index])).flat_map(
              lambda log_probs, count: tf.data.Dataset.from_tensors(log_probs).repeat(count))
      examples = tf.data.Dataset.zip(examples, per_image).map(
          lambda example, log_probs: (*example, log_probs))
    return self._batches(examples, stream, sampled=feed is not None)

  def _batches(self, examples, stream, sampled):
    """Per-image base preprocessing and sampling, batching, then the batch's augmentation,
    Cutout and standardisation (or, under augment_on="device", what precedes them), of
    (id, image, label[, log p]) examples."""
    if sampled and self.augment_batch is not None and self.augment_on == "device":
      # The host applies the sampled operation before augment_batch; the device could only
      # apply it after. No policy has both (`ohl_tf.augmentation_policies`).
      raise ValueError("augment_on='device' cannot apply sampled operations under a fixed "
                       "augment_batch, which must follow them.")
    stream = tf.constant(stream, tf.int32)
    example = functools.partial(self._sampled if sampled else self._plain, stream=stream)
    examples = examples.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = examples.batch(self.schedule.batch_size, drop_remainder=True).map(
        functools.partial(self._finished_batch, stream=stream, sampled=sampled),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = _options()
    # Per-image work is small: intra-op threads only contend with the training step's.
    options.threading.max_intra_op_parallelism = 1
    return batches.prefetch(tf.data.AUTOTUNE).with_options(options)


class SamplingFeed:
  """Hands a persistent training pipeline (`TrainPipeline.run_dataset`) the log p of each
  period, in order; the pipeline waits for a period's log p before it samples its images.

  A FIFO queue on the host: `put` after the outer step that sets the period's θ, `close` when
  the run ends or fails (a pipeline waiting for a log p then ends instead of waiting forever).
  """

  def __init__(self, capacity=2, search_space=augment.PAPER):
    """`capacity`: how many log p may wait (`put` blocks beyond it); the trainer puts one per
    period, after the pipeline has taken the last. `search_space`: the `augment.SearchSpace`
    whose operations' log p [K] it carries."""
    self.search_space = search_space
    with tf.device("/cpu:0"):
      self._queue = tf.queue.FIFOQueue(capacity, [tf.float32],
                                       shapes=[[search_space.num_operations]])

  @classmethod
  def uniform(cls, num_periods, search_space=augment.PAPER):
    """A feed already holding the uniform p's log (θ = 0) for each of `num_periods` periods:
    training without outer steps (the benchmarks' plain trainings)."""
    feed = cls(capacity=num_periods, search_space=search_space)
    for _ in range(num_periods):
      feed.put(policy.log_operation_probabilities(tf.zeros([search_space.num_operations])))
    return feed

  def put(self, log_probs):
    self._queue.enqueue(tf.convert_to_tensor(log_probs, tf.float32))

  def take(self):
    return self._queue.dequeue()

  def close(self):
    self._queue.close(cancel_pending_enqueues=True)


def eval_dataset(examples, batch_size, mean, std):
  """Unaugmented, standardised batches of (uint8 image, label) examples, in order (the last
  batch may be smaller)."""
  dataset = examples.batch(batch_size)
  return dataset.map(lambda x, y: (preprocess.normalize(x, mean, std), y),
                     num_parallel_calls=2).prefetch(1).with_options(_options())


def _options():
  """Options of every pipeline of a run: no autotuning.

  Destroying an autotuned iterator waits for its autotuning thread's next round, up to a minute
  later (TensorFlow 2.21): 9 s per outer step for validation iterators and 12-37 s at the end of
  a run for the training ones were measured. Without autotuning, a map with
  `num_parallel_calls=AUTOTUNE` runs min(16, cores) calls at once and `prefetch(AUTOTUNE)` sizes
  its buffer by tf.data's own prefetch autotuner (training images/s unchanged within the noise
  here). A distributed dataset adds an autotuned root anyway: `Trajectory._distribute`.
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return options


def dataset_bytes(dataset, batch_size):
  """At most the bytes of all the elements of a finite `dataset` of batches of `batch_size`
  (its last batch may be smaller), from its cardinality and element spec; infinity when its
  length is unknown (e.g. records streamed from tfds)."""
  batches = int(dataset.cardinality())
  if batches < 0:  # tf.data.INFINITE_CARDINALITY or UNKNOWN_CARDINALITY
    return math.inf
  return batches * batch_size * sum(math.prod(spec.shape[1:]) * spec.dtype.size
                                    for spec in tf.nest.flatten(dataset.element_spec))
