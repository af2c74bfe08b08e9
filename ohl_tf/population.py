"""This process's trajectories of a run (paper Algorithm 1's w_1..w_N, or a cluster worker's
share): built on their devices, fed, trained for a period, their results gathered, checked
finite, and made equal to the best (docs/loop.md).

Each trajectory (`ohl_tf.trajectory`) keeps one training input for the whole run: a persistent
`pipeline.TrainPipeline.run_dataset`, whose `pipeline.SamplingFeed` takes each period's log p, and
one input of the validation split (`prepare`). Trajectories on distinct devices train in parallel
threads, which only execute what the caller's thread built for them (TensorFlow must not build
graphs in two threads at once).

Every exchange with the other workers goes through the run's cluster (`cluster.Cluster`, or
`cluster.Local` for one process, whose collectives return what they are given), so one process
and a cluster run the same code.
"""

import collections
import concurrent.futures
import dataclasses
import functools
import time

import keras
import numpy as np
import tensorflow as tf

import models
from ohl_tf import datasets
from ohl_tf import evaluation
from ohl_tf import pipeline
from ohl_tf import run_directory
from ohl_tf import schedule as schedule_lib
from ohl_tf import trajectory as trajectory_lib

# The validation split is kept on the trajectories' devices, standardised, when all the copies of
# this process fit in this many bytes (CIFAR's 5,000 images: 61 MB a copy); a larger split
# (ImageNet's) is read through an input pipeline every outer step.
_VALIDATION_CACHE_BYTES = 2 << 30

# What one trajectory did in one period: its training loss and accuracy over the period, the
# seconds its training took (input included, validation not), and its `evaluation.Evaluation`
# on the validation split.
PeriodResult = collections.namedtuple(
    "PeriodResult", ["train_loss", "train_accuracy", "train_seconds", "validation"])


class NonFiniteLossError(RuntimeError):
  """A trajectory's training loss became NaN or infinite."""


def train_source(data, train_subset):
  """The training examples of the run: all of `data`'s, or its first `train_subset`.

  Raises:
    ValueError: `train_subset` exceeds the training images.
  """
  if train_subset > data.num_train:
    raise ValueError(f"--train_subset={train_subset} exceeds the {data.num_train} training "
                     f"images of {data.name} (after the validation split); use at most that "
                     "many, or 0 for all.")
  count = train_subset or data.num_train
  if isinstance(data, datasets.StreamingDataset):
    return pipeline.StreamSource(dataclasses.replace(data, num_train=count))
  if isinstance(data, datasets.FolderStream):
    return pipeline.FileSource.from_files(data.train_paths[:count], data.train_labels[:count],
                                          data.decode, data.image_shape)
  return pipeline.MemorySource.from_arrays(data.train_images[:count], data.train_labels[:count])


class Population:
  """The trajectories this process holds, each under its own MirroredStrategy.

  Args:
    config: the run's `run_config.Config`.
    data: a `datasets.ImageDataset`, `datasets.FolderStream` or `datasets.StreamingDataset`.
    augmentation: the run's `augmentation_policies.AugmentationPolicy`.
    estimator: the outer step's `estimators.Estimator` (which random streams a trajectory
      draws from).
    space: the run's `augment.SearchSpace`.
    trajectory_devices: one list of device names per trajectory of this process
      (`devices.split_devices`).
    cluster: the run's `cluster.Cluster` or `cluster.Local`: which of the N trajectories are
      here, and the collectives of `gather` and `make_equal`.
  """

  def __init__(self, config, data, augmentation, estimator, space, trajectory_devices, cluster):
    self.config = config
    self.cluster = cluster
    self.estimator = estimator
    self.samples_operations = augmentation.samples_operations
    self.space = space
    source = train_source(data, config.train_subset)
    self.schedule = schedule_lib.Schedule(source.num_examples, config.batch_size, config.epochs,
                                          config.inner_steps)
    self.train_data = pipeline.TrainPipeline(
        source, self.schedule, data.mean, data.std, config.seed,
        augmentation.cutout_size(config.cutout), base=data.train_base,
        augment_batch=augmentation.augment_batch(data.name),
        augment_path=config.augment_path, augment_on=config.augment_on, search_space=space)
    self.val_data = pipeline.eval_dataset(data.eval_examples("val"), config.eval_batch_size,
                                          data.mean, data.std)
    indices = cluster.local_trajectories(config.trajectories)
    validation_bytes = pipeline.dataset_bytes(self.val_data, config.eval_batch_size)
    self._cache_validation = validation_bytes * len(indices) <= _VALIDATION_CACHE_BYTES
    self._inputs = {}  # trajectory index: (iterator, `SamplingFeed` or None), see `prepare`
    self._validation = {}  # trajectory index: its `Evaluator.validation_passes`, see `prepare`
    self.trajectories = self._build(data, indices, trajectory_devices)

  def _build(self, data, indices, trajectory_devices):
    config = self.config
    learning_rate = trajectory_lib.learning_rate_schedule(
        config.lr, self.schedule.total_steps,
        config.warmup_epochs * self.schedule.steps_per_epoch, config.warmup_lr)
    build_model = functools.partial(models.build, config.model, data.num_classes,
                                    data.image_shape)
    make_optimizer = functools.partial(keras.optimizers.SGD, learning_rate,
                                       momentum=config.momentum, nesterov=config.nesterov)
    keras.utils.set_random_seed(config.seed)  # w_0
    return [
        trajectory_lib.Trajectory(n, devices, build_model, make_optimizer, config.weight_decay,
                                  config.batch_size, count_operations=self.samples_operations,
                                  precision=config.precision, jit_compile=config.jit_compile,
                                  finish_batch=self.train_data.device_augmentation(
                                      self.samples_operations),
                                  search_space=self.space)
        for n, devices in zip(indices, trajectory_devices)]

  # -------------------------------------------------------------------------------------------
  # Inputs and the inner loop.
  # -------------------------------------------------------------------------------------------

  def prepare(self, period):
    """Per trajectory index, its persistent training input: (iterator, `SamplingFeed` or None),
    built at the run's first period (or where it resumes) and kept for every later one, so no
    period restarts a training pipeline (`TrainPipeline.run_dataset`); with it every traced
    step, i.e. all that precedes the first training step, and its validation passes (the split
    read once and kept on its devices when it fits: `_VALIDATION_CACHE_BYTES`)."""
    if not self._inputs:
      for t in self.trajectories:  # all in this thread, before any trains (`train`)
        feed = pipeline.SamplingFeed(search_space=self.space) if self.samples_operations else None
        dataset = self.train_data.run_dataset(period, self.estimator.random_stream(t.index), feed)
        self._inputs[t.index] = (t.input_iterator(dataset), feed)
      self._validation = {t.index: t.evaluator.validation_passes(self.val_data,
                                                                 self._cache_validation)
                          for t in self.trajectories}
    return self._inputs

  def close(self):
    """Ends the persistent pipelines (one waiting for a period's log p stops waiting)."""
    for _, feed in self._inputs.values():
      if feed is not None:
        feed.close()
    self._inputs, self._validation = {}, {}

  def train(self, period, log_probs):
    """The inner loop: trains every trajectory here for one period, then validates it.

    Trajectories on distinct devices run in parallel threads, which only execute what this
    thread built for them (their persistent input pipelines, distributed iterators and traced
    steps, `prepare`): TensorFlow must not build graphs in two threads at once, nor make a
    multi-device iterator while another thread trains.

    Args:
      period: the period (outer step, 0-based).
      log_probs: per trajectory index (of all N), log p [K] of the operations it samples this
        period; None when the policy draws no OHL operation.

    Returns:
      The `PeriodResult` of each trajectory here, in order.
    """
    start, end = self.schedule.period(period)
    inputs = self.prepare(period)
    # This period's passes, made in this thread (a new iterator builds a graph).
    validation = {index: one_pass() for index, one_pass in self._validation.items()}
    groups = {}
    for t in self.trajectories:
      groups.setdefault(t.devices, []).append(t)

    def run_trajectory(t):
      train_iterator, feed = inputs[t.index]
      if feed is not None:  # the period's θ: its pipeline samples from here on
        feed.put(log_probs[t.index])
      t.reset_period()
      started = time.perf_counter()
      loss, accuracy = t.train(train_iterator, end - start)
      return PeriodResult(loss, accuracy, time.perf_counter() - started,
                          t.evaluator.evaluate(validation[t.index]))

    if len(groups) == 1:
      return [run_trajectory(t) for t in self.trajectories]
    run_group = lambda group: [run_trajectory(t) for t in group]
    with concurrent.futures.ThreadPoolExecutor(len(groups)) as pool:
      results = [r for group in pool.map(run_group, groups.values()) for r in group]
    by_index = dict(zip([t.index for g in groups.values() for t in g], results))
    return [by_index[t.index] for t in self.trajectories]

  # -------------------------------------------------------------------------------------------
  # The outer step's side.
  # -------------------------------------------------------------------------------------------

  def gather(self, results):
    """All N trajectories' results from this process's `train` (in a cluster, every worker's,
    in trajectory order).

    Returns:
      (the `PeriodResult` of each of the N, op counts int32 [N, K], the first non-finite step of
      each [N], -1 where none).
    """
    rows = np.array([[r.train_loss, r.train_accuracy, r.train_seconds, *r.validation,
                      t.first_bad_step.numpy()]
                     for r, t in zip(results, self.trajectories)], np.float64)
    counts = np.stack([t.op_counts.numpy() for t in self.trajectories])
    rows, counts = self.cluster.gather(rows), self.cluster.gather(counts)
    results = [PeriodResult(*row[:3], evaluation.Evaluation(*row[3:6])) for row in rows]
    return results, counts, rows[:, 6].astype(np.int64)

  def check_finite(self, period, bad_steps):
    """Raises NonFiniteLossError naming the first trajectory whose loss was not finite.

    Args:
      period: the period just trained (0-based).
      bad_steps: per trajectory, its first non-finite step, or -1 (`gather`).
    """
    for n, bad_step in enumerate(bad_steps):
      if bad_step >= 0:
        kept = (f"the last good checkpoint (outer step {period}) is kept in "
                f"{run_directory.path(self.config.model_dir, run_directory.CHECKPOINTS)}"
                if period else "no outer step had completed")
        raise NonFiniteLossError(
            f"Trajectory {n} produced a non-finite training loss at step {bad_step} "
            f"(period {period}). Stopped; {kept}. Lower --lr or check the data.")

  def make_equal(self, best):
    """Algorithm 1's copy: every trajectory takes trajectory `best`'s state (weights, BatchNorm
    statistics, optimizer slots and step), broadcast by the worker that holds it (in one
    process, read from it directly). Every worker calls it with the same `best`."""
    owner = self.cluster.worker_of(best, self.config.trajectories)
    local = {t.index: t for t in self.trajectories}
    source = local.get(best, self.trajectories[0])  # elsewhere: only shapes and dtypes count
    values = self.cluster.broadcast([tf.convert_to_tensor(v) for v in source.state], owner)
    for t in self.trajectories:
      if t.index != best:
        for target, value in zip(t.state, values):
          target.assign(value)
