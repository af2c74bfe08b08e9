"""The online search of OHL-Auto-Aug: paper section 3.2, Algorithm 1, docs/loop.md.

  θ = 0; w_1..w_N = w_0
  for each period T:
    every trajectory n trains I steps on images augmented with ops ~ p_θ, counting them (c_n),
    then scores acc_n on the validation split;
    the outer step moves θ by REINFORCE on the normalised accuracies (Adam) and copies the best
    trajectory's weights, BatchNorm statistics and optimizer slots to every other.

The same loop trains the baselines (`ohl_tf.augmentation_policies`): with a fixed policy θ does
not move, and with one trajectory (as the paper's baselines) the outer step only validates and
checkpoints.

A run lives in one `model_dir`: `config.json` (what it was started with), `checkpoints/` (after
every outer step: θ and its Adam state, every trajectory, the outer step, the history of θ; the
data position and every random draw follow from the outer step and the seed), `logs/`
(TensorBoard) and, at the end, `saved_model/`, `results.json` and, for the policies over the OHL
operations (ohl, uniform, file:), `policy.json`.
"""

import collections
import concurrent.futures
import dataclasses
import functools
import json
import math
import os
import shutil
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

import models
from ohl_tf import augment
from ohl_tf import augmentation_policies
from ohl_tf import checkpoints as checkpoints_lib
from ohl_tf import cluster as cluster_lib
from ohl_tf import console
from ohl_tf import datasets
from ohl_tf import devices as devices_lib
from ohl_tf import export
from ohl_tf import pipeline
from ohl_tf import policy
from ohl_tf import policy_file
from ohl_tf import run_config
from ohl_tf import summaries
from ohl_tf import trajectory as trajectory_lib

# Settings that may change between a run and its resumption: where things are, how fast.
# Not --jit_compile, although it is about speed: XLA fuses and orders the float operations
# differently, so a resumed run that switched it would no longer replay the uninterrupted one
# bit for bit under --deterministic. Nor --precision, which changes the arithmetic (and, for
# mixed_float16, the optimizer's checkpointed variables). --augment_path, --augment_on and
# --folder_stream may: each choice gives the same bytes.
_RESUMABLE_CHANGES = ("data_dir", "model_dir", "eval_batch_size", "cpu_devices", "overwrite",
                      "augment_path", "augment_on", "folder_stream", "figure_interval_secs",
                      "cluster", "cluster_timeout")
_ARTEFACTS = ("checkpoints", "logs", "saved_model", "policy.json", "results.json", "config.json")
# The validation split is kept on the trajectories' devices, standardised, when all the copies of
# this process fit in this many bytes (CIFAR's 5,000 images: 61 MB a copy); a larger split
# (ImageNet's) is read through an input pipeline every outer step.
_VALIDATION_CACHE_BYTES = 2 << 30


def best_trajectory(scores, val_losses):
  """n* of Algorithm 1: the highest score; ties (frequent for accuracy on a small validation
  split) go to the lower validation loss, then to the lower index."""
  scores, val_losses = np.asarray(scores), np.asarray(val_losses)
  return int(np.lexsort((np.arange(len(scores)), val_losses, -scores))[0])


# What one trajectory did in one period: its training loss and accuracy over the period, and its
# `trajectory.Evaluation` on the validation split.
PeriodResult = collections.namedtuple("PeriodResult",
                                      ["train_loss", "train_accuracy", "validation"])


class NonFiniteLossError(RuntimeError):
  """A trajectory's training loss became NaN or infinite."""


# ---------------------------------------------------------------------------------------------
# The run directory.
# ---------------------------------------------------------------------------------------------

def check_model_dir(config):
  """Returns True when `model_dir` holds a run of this configuration to resume.

  Checkpoints that cannot be read are set aside first (`checkpoints.recover`): the run resumes
  from the newest intact one.

  Raises:
    ValueError: it holds a run started with other settings, and --overwrite is not set.
    checkpoints.DamagedCheckpointError: it holds this run but no intact checkpoint, and
      --overwrite (which then starts the run afresh) is not set.
  """
  config_path = os.path.join(config.model_dir, "config.json")
  if not os.path.exists(config_path):
    return False
  with open(config_path) as file:
    saved = json.load(file)
  wanted = dataclasses.asdict(config)
  defaults = dataclasses.asdict(run_config.Config())
  differing = sorted(key for key in set(saved) | set(wanted)
                     if key not in _RESUMABLE_CHANGES
                     # A setting added after the run started has its default there.
                     and saved.get(key, defaults.get(key)) != wanted.get(key))
  if not differing:
    try:
      return checkpoints_lib.recover(os.path.join(config.model_dir, "checkpoints")) is not None
    except checkpoints_lib.DamagedCheckpointError:
      if config.overwrite:
        return False
      raise
  if config.overwrite:
    return False
  details = "; ".join(f"--{k}: {saved.get(k, defaults.get(k))!r} there, "
                      f"{wanted.get(k)!r} now" for k in differing)
  raise ValueError(f"--model_dir={config.model_dir} holds a run with a different configuration "
                   f"({details}). Use another --model_dir, or --overwrite to delete that run.")


def start_model_dir(config, resuming):
  """Writes config.json; a new run with --overwrite first deletes the old run's artefacts
  (and nothing else in the directory)."""
  os.makedirs(config.model_dir, exist_ok=True)
  if config.overwrite and not resuming:
    for name in _ARTEFACTS:
      path = os.path.join(config.model_dir, name)
      if os.path.isdir(path):
        shutil.rmtree(path)
      elif os.path.exists(path):
        os.remove(path)
  path = os.path.join(config.model_dir, "config.json")
  try:
    export.write_json(path, dataclasses.asdict(config))
  except OSError as error:
    raise checkpoints_lib.write_failure(path, error, "resumes") from None


# ---------------------------------------------------------------------------------------------
# The search.
# ---------------------------------------------------------------------------------------------

def _train_source(data, train_subset):
  """The training examples of the run: all of `data`'s, or its first `train_subset`."""
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


class OnlineSearch:
  """Algorithm 1 over N trajectories, each under its own MirroredStrategy.

  Args:
    config: the run's `run_config.Config`.
    data: a `datasets.ImageDataset`, `datasets.FolderStream` or `datasets.StreamingDataset`.
    trajectory_devices: one list of device names per trajectory of this process
      (`devices.split_devices`).
    cluster: None for one process (all N trajectories here), else this worker's
      `cluster.Cluster`: the trajectories here are `cluster.local_trajectories(N)`, the outer step
      gathers every worker's results and broadcasts the best state, and only the chief writes.
  """

  def __init__(self, config, data, trajectory_devices, cluster=None):
    self.config = config
    self.data = data
    self.cluster = cluster
    self.local_indices = (cluster.local_trajectories(config.trajectories) if cluster else
                          list(range(config.trajectories)))
    self.augmentation = augmentation_policies.parse(config.policy)
    self.space = augment.search_space(config.search_space)
    self.fixed_probabilities = self.augmentation.fixed_probabilities(self.space)
    # Only a learned θ explores: the fixed policies sample from their own p unperturbed.
    self.estimator = config.estimator if self.augmentation.learns_theta else "reinforce"
    if config.estimator != self.estimator:
      logging.warning("--estimator=%s has no effect with --policy=%s, whose θ does not learn.",
                      config.estimator, config.policy)
    if self.augmentation.trains_one_network and config.trajectories > 1:
      logging.warning("--policy=%s with --trajectories=%d trains %d networks and copies the best "
                      "to all every outer step; the paper's baselines train one "
                      "(--trajectories=1).", config.policy, config.trajectories,
                      config.trajectories)
    source = _train_source(data, config.train_subset)
    self.schedule = pipeline.Schedule(source.num_examples, config.batch_size, config.epochs,
                                      config.inner_steps)
    self.train_data = pipeline.TrainPipeline(
        source, self.schedule, data.mean, data.std, config.seed,
        config.cutout if self.augmentation.uses_cutout else 0, base=data.train_base,
        augment_batch=self.augmentation.augment_batch(data.name),
        augment_path=config.augment_path, augment_on=config.augment_on,
        search_space=self.space)
    self.val_data = pipeline.eval_dataset(data.eval_examples("val"), config.eval_batch_size,
                                          data.mean, data.std)
    validation_bytes = pipeline.dataset_bytes(self.val_data, config.eval_batch_size)
    self._cache_validation = validation_bytes * len(self.local_indices) <= _VALIDATION_CACHE_BYTES
    self._persistent_inputs = {}  # trajectory index: its inputs (`_inputs`)
    self._figures_drawn = -math.inf  # when `_summarise` last drew TensorBoard's figures
    self.trajectories = self._build_trajectories(trajectory_devices)
    self._copy_from(0)  # one w_0 for all (Algorithm 1); a cluster's: the chief's (`_start`)

    num_periods = self.schedule.num_periods
    with tf.device("/cpu:0"):  # θ is the outer loop's own plain variable, not a mirrored one
      self.theta = tf.Variable(tf.zeros([self.space.num_operations]), name="theta")
      self.theta_optimizer = policy.make_theta_optimizer(config.theta_lr)
      self.theta_optimizer.build([self.theta])
      self.outer_step = tf.Variable(0, dtype=tf.int64, name="outer_step")
      self.theta_history = tf.Variable(tf.zeros([num_periods + 1, self.space.num_operations]),
                                       name="theta_history")
      self.val_history = tf.Variable(tf.zeros([num_periods, config.trajectories]),
                                     name="val_history")
      self.wall_time = tf.Variable(0.0, dtype=tf.float64, name="wall_time")
      # The running sum of each period's best trajectory's op counts: what the surviving
      # network trained on (best-of-N broadcast), which is not p_θ.
      self.lineage = tf.Variable(tf.zeros([self.space.num_operations], tf.float64),
                                 name="lineage")
    self._checkpointed = dict(
        theta=self.theta, theta_optimizer=self.theta_optimizer, outer_step=self.outer_step,
        theta_history=self.theta_history, val_history=self.val_history,
        wall_time=self.wall_time, lineage=self.lineage,
        **{f"trajectory_{t.index}": tf.train.Checkpoint(model=t.model, optimizer=t.optimizer)
           for t in self.trajectories})  # in a cluster, the chief's

    self.checkpoint = tf.train.Checkpoint(**self._checkpointed)
    # Nothing is written to model_dir before `run`, so a run that fails to build loses nothing.
    self.checkpoints = None
    self.writer = None

  def _build_trajectories(self, trajectory_devices):
    config = self.config
    steps_per_epoch = self.schedule.steps_per_epoch
    learning_rate = trajectory_lib.learning_rate_schedule(
        config.lr, self.schedule.total_steps, config.warmup_epochs * steps_per_epoch,
        config.warmup_lr)
    build_model = functools.partial(models.build, config.model, self.data.num_classes,
                                    self.data.image_shape)
    make_optimizer = functools.partial(keras.optimizers.SGD, learning_rate,
                                       momentum=config.momentum, nesterov=config.nesterov)
    keras.utils.set_random_seed(config.seed)  # w_0
    return [
        trajectory_lib.Trajectory(n, devices, build_model, make_optimizer, config.weight_decay,
                                  config.batch_size,
                                  count_operations=self.augmentation.samples_operations,
                                  precision=config.precision, jit_compile=config.jit_compile,
                                  finish_batch=self.train_data.device_augmentation(
                                      self.augmentation.samples_operations),
                                  search_space=self.space)
        for n, devices in zip(self.local_indices, trajectory_devices)]

  # -------------------------------------------------------------------------------------------
  # The outer step.
  # -------------------------------------------------------------------------------------------

  def _copy_from(self, source):
    """Assigns trajectory `source`'s state to every other trajectory."""
    assignments = [target.assign(value.value) for other in self.trajectories
                   if other is not self.trajectories[source]
                   for target, value in zip(other.state, self.trajectories[source].state)]
    with tf.control_dependencies(assignments):
      return tf.constant(source)

  @tf.function
  def _outer_update(self, accuracies, scores, perturbations, best, counts=None):
    """θ's Adam step on the estimated gradient, then the best trajectory's state to all
    (Algorithm 1; in a cluster the copy is `_copy_best`'s, after this).

    Args:
      accuracies: float32 [N], validation accuracies (recorded).
      scores: float32 [N], what is rewarded (the accuracies, or minus the validation loss);
        the best trajectory is the one with the highest score.
      perturbations: float32 [N, 36], the ε_n the trajectories sampled with (element_es).
      best: int32 scalar, the trajectory to copy (`best_trajectory`).
      counts: int32 [N, 1296], every trajectory's op counts (gathered from the workers); None:
        read from the trajectories here (all N in one process).
    """
    if counts is None:
      counts = tf.stack([tf.convert_to_tensor(t.op_counts) for t in self.trajectories])
    if self.augmentation.learns_theta:
      rewards = policy.reinforce_step(self.theta, self.theta_optimizer, counts, scores,
                                      self.estimator, perturbations,
                                      self.config.es_sigma)["normalized_rewards"]
    else:  # a fixed policy: θ stays as it is
      rewards = policy.normalized_rewards(scores)
    self.lineage.assign_add(tf.cast(tf.gather(counts, best), tf.float64))
    if self.cluster is None and len(self.trajectories) > 1:
      best = tf.switch_case(best, [functools.partial(self._copy_from, n)
                                   for n in range(len(self.trajectories))])
    self.val_history[self.outer_step].assign(accuracies)
    self.outer_step.assign_add(1)
    self.theta_history[self.outer_step].assign(self.theta)
    return rewards, best

  def _copy_best(self, best):
    """A cluster's copy of the outer step: the worker holding trajectory `best` broadcasts its
    state (one flat vector: weights, BatchNorm statistics, optimizer slots; the step counters
    apart, exactly) and every worker assigns it to its other trajectories."""
    owner = next(w for w, indices in enumerate(
        cluster_lib.split_trajectories(self.config.trajectories, self.cluster.num_workers))
                 if best in indices)
    local = {t.index: t for t in self.trajectories}
    source = local.get(best, self.trajectories[0])
    values = self.cluster.broadcast([v.numpy() for v in source.state], owner)
    for t in self.trajectories:
      if t.index != best:
        for target, value in zip(t.state, values):
          target.assign(value)

  # -------------------------------------------------------------------------------------------
  # The inner loop.
  # -------------------------------------------------------------------------------------------

  def perturbations(self, period):
    """ε_n [N, E] of element_es in `period` (a function of the seed and period), else 0."""
    if self.estimator == "element_es":
      return policy.element_perturbations(self.config.seed, period, self.config.trajectories,
                                          self.space.num_elements)
    return tf.zeros([self.config.trajectories, self.space.num_elements])

  def random_stream(self, trajectory):
    """The random streams (ops, signs, Cutout) of a trajectory: its own, except under
    element_es, whose antithetic pairs share theirs (common random numbers): with Gumbel-max
    draws (`policy.draw_operations`) a pair's batches then differ only where ±ε changes an
    image's op, so its reward difference measures ε, not the other draws."""
    return trajectory // 2 if self.estimator == "element_es" else trajectory

  def sampling_log_probs(self, period):
    """Per trajectory, log p of the operations it samples in `period` (eq. 7; at its own
    θ_n = θ + σAε_n under element_es); None when the policy draws no OHL operation."""
    if not self.augmentation.samples_operations:
      return None
    if self.fixed_probabilities is not None:
      return [policy_file.log_probabilities(self.fixed_probabilities)] * self.config.trajectories
    theta = self.theta.read_value()
    if self.estimator == "element_es":
      return tf.unstack(policy.log_operation_probabilities(policy.perturbed_theta(
          theta, self.perturbations(period), self.config.es_sigma)))
    return [policy.log_operation_probabilities(theta)] * self.config.trajectories

  def _inputs(self, period):
    """Per (local) trajectory index, its persistent training input: (iterator, `SamplingFeed`
    or None), built at the run's first period (or where it resumes) and kept for every later
    one, so no period restarts a training pipeline (`TrainPipeline.run_dataset`)."""
    if not self._persistent_inputs:
      for t in self.trajectories:  # all in this thread, before any trains (`_inner_loop`)
        feed = (pipeline.SamplingFeed(search_space=self.space)
                if self.augmentation.samples_operations else None)
        dataset = self.train_data.run_dataset(period, self.random_stream(t.index), feed)
        self._persistent_inputs[t.index] = (t.input_iterator(dataset), feed)
    return self._persistent_inputs

  def _close_inputs(self):
    """Ends the persistent pipelines (one waiting for a period's log p stops waiting)."""
    for _, feed in self._persistent_inputs.values():
      if feed is not None:
        feed.close()
    self._persistent_inputs = {}

  def _inner_loop(self, period):
    """Trains every trajectory for one period; trajectories on distinct devices in parallel
    threads, which only execute what this thread built for them (their persistent input
    pipelines, distributed iterators and traced steps, `_inputs`): TensorFlow must not build
    graphs in two threads at once, nor make a multi-device iterator while another thread
    trains."""
    start, end = self.schedule.period(period)
    log_probs = self.sampling_log_probs(period)
    inputs = self._inputs(period)
    validation = {t.index: t.evaluation_batches(self.val_data, self._cache_validation)
                  for t in self.trajectories}
    groups = {}
    for t in self.trajectories:
      groups.setdefault(t.devices, []).append(t)

    def run_trajectory(t):
      train_iterator, feed = inputs[t.index]
      if feed is not None:  # the period's θ: its pipeline samples from here on
        feed.put(log_probs[t.index])
      t.reset_period()
      loss, accuracy = t.train(train_iterator, end - start)
      return PeriodResult(loss, accuracy, t.evaluate(validation[t.index]))

    if len(groups) == 1:
      return [run_trajectory(t) for t in self.trajectories]
    run_group = lambda group: [run_trajectory(t) for t in group]
    with concurrent.futures.ThreadPoolExecutor(len(groups)) as pool:
      results = [r for group in pool.map(run_group, groups.values()) for r in group]
    by_index = dict(zip([t.index for g in groups.values() for t in g], results))
    return [by_index[t.index] for t in self.trajectories]

  def _gather(self, results):
    """Every trajectory's `PeriodResult`, op counts [N, 1296] and first non-finite step [N]
    from this process's: in a cluster, gathered from every worker (in trajectory order)."""
    rows = np.array([[r.train_loss, r.train_accuracy, r.validation.accuracy,
                      r.validation.top5_accuracy, r.validation.loss, t.first_bad_step.numpy()]
                     for r, t in zip(results, self.trajectories)], np.float64)
    counts = np.stack([t.op_counts.numpy() for t in self.trajectories])
    if self.cluster:
      rows, counts = self.cluster.gather(rows), self.cluster.gather(counts)
    results = [PeriodResult(row[0], row[1], trajectory_lib.Evaluation(*row[2:5])) for row in rows]
    return results, counts, rows[:, 5].astype(np.int64)

  def _check_finite(self, period, bad_steps):
    for n, bad_step in enumerate(bad_steps):
      if bad_step >= 0:
        kept = (f"the last good checkpoint (outer step {period}) is kept in "
                f"{os.path.join(self.config.model_dir, 'checkpoints')}" if period else
                "no outer step had completed")
        raise NonFiniteLossError(
            f"Trajectory {n} produced a non-finite training loss at step {bad_step} "
            f"(period {period}). Stopped; {kept}. Lower --lr or check the data.")

  # -------------------------------------------------------------------------------------------
  # The run.
  # -------------------------------------------------------------------------------------------

  def restore(self):
    """Restores the latest checkpoint; returns the outer step to continue from.

    `run`'s `check_model_dir` has set aside the checkpoints that cannot be read. In a cluster only
    the chief reads (and later writes) the checkpoints; `_start` then sends its state to the
    other workers.
    """
    if self.cluster and not self.cluster.is_chief:
      return int(self.outer_step.numpy())
    # Two: when the newest is damaged (e.g. a crash while the disk wrote it), the other is one
    # period older, so a damaged file costs at most one period.
    self.checkpoints = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(self.config.model_dir, "checkpoints"), max_to_keep=2)
    self.writer = tf.summary.create_file_writer(os.path.join(self.config.model_dir, "logs"))
    path = self.checkpoints.latest_checkpoint
    if path:
      saved = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
      if "lineage" not in saved:
        logging.warning("%s predates the lineage record: it counts from outer step %d on.",
                        path, int(tf.train.load_checkpoint(path).get_tensor(
                            "outer_step/.ATTRIBUTES/VARIABLE_VALUE")))
      # A run checkpointed by another layout of workers may lack some trajectories here: after
      # an outer step all are equal, so they take the first one's state.
      missing = [t for t in self.trajectories[1:] if f"trajectory_{t.index}" not in saved]
      checkpoint = self.checkpoint
      if not saved.issuperset(self._checkpointed):
        checkpoint = tf.train.Checkpoint(**{k: v for k, v in self._checkpointed.items()
                                            if k in saved})
      checkpoint.restore(path).assert_existing_objects_matched()
      self.checkpoint.save_counter.assign(checkpoint.save_counter)
      if missing:
        self._copy_from(0)
      logging.info("Resuming %s at outer step %d.", path, int(self.outer_step.numpy()))
    return int(self.outer_step.numpy())

  def _start(self):
    """A cluster's start: the chief's state (θ, its Adam state, the counters and histories, and
    its first trajectory: w_0, or the restored w_n*) to every trajectory of every worker."""
    outer = self.checkpoint_variables()
    source = self.trajectories[0]
    values = self.cluster.broadcast([v.numpy() for v in outer + source.state], 0)
    for variable, value in zip(outer, values):
      variable.assign(value)
    for t in self.trajectories:
      for target, value in zip(t.state, values[len(outer):]):
        target.assign(value)
    return int(self.outer_step.numpy())

  def checkpoint_variables(self):
    """The outer loop's own variables (θ and its Adam state, counters, histories, lineage)."""
    return ([self.theta] + list(self.theta_optimizer.variables) +
            [self.outer_step, self.theta_history, self.val_history, self.wall_time, self.lineage])

  def run(self, on_outer_step=None, started_at=None):
    """Runs the remaining periods, then exports; returns the results dict (in a cluster: the
    chief's; None on the other workers, which write nothing).

    Args:
      on_outer_step: optional callable, given after every outer step a dict with "period",
        "op_counts" (int [N, 1296], what each trajectory applied), "accuracies", "scores",
        "rewards" (normalised, [N]), "best" and "perturbations" ([N, 36], element_es's ε_n;
        zeros for the other estimators).
      started_at: `time.monotonic()` when the command started, from which the terminal reports
        the time to the first training step; None: from this call.
    """
    started_at = time.monotonic() if started_at is None else started_at
    first = self.restore()
    if self.cluster:
      first = self._start()
      self.cluster.start_watchdog()
    chief = not self.cluster or self.cluster.is_chief
    num_periods = self.schedule.num_periods
    started = time.time()
    try:
      if first < num_periods:
        self._inputs(first)  # every pipeline and traced step: all that precedes the first step
        console.TERMINAL.info("first training step %.1f s after the start",
                              time.monotonic() - started_at)
      for period in range(first, num_periods):
        if self.cluster:
          self.cluster.step = period + 1
        period_start = time.time()
        results, counts, bad_steps = self._gather(self._inner_loop(period))
        self._check_finite(period, bad_steps)
        accuracies = np.array([r.validation.accuracy for r in results], np.float32)
        scores = (accuracies if self.config.reward == "accuracy" else
                  -np.array([r.validation.loss for r in results], np.float32))
        perturbations = self.perturbations(period)
        best = best_trajectory(scores, [r.validation.loss for r in results])
        rewards, best = self._outer_update(
            tf.constant(accuracies), tf.constant(scores), perturbations, tf.constant(best, tf.int32),
            **({"counts": tf.constant(counts)} if self.cluster else {}))
        if self.cluster and self.config.trajectories > 1:
          self._copy_best(int(best))
        if on_outer_step:
          on_outer_step({"period": period, "op_counts": counts, "accuracies": accuracies,
                         "scores": scores, "rewards": rewards.numpy(), "best": int(best),
                         "perturbations": perturbations.numpy()})
        self.wall_time.assign_add(time.time() - period_start)
        if chief:
          checkpoints_lib.save(self.checkpoints, period + 1)
          self._summarise(period, results, rewards.numpy(), int(best))
        self._log_progress(period, accuracies, int(best), time.time() - period_start,
                           (time.time() - started) / (period + 1 - first))
    finally:
      self._close_inputs()
    results = self._export() if chief else None
    if self.cluster:  # no worker leaves before all are done (an early exit looks like a crash)
      self.cluster.stop_watchdog()
      self.cluster.barrier("end")
    return results

  def _export(self):
    """`_finish`, a failed write of an export turned into one line naming the file and cause."""
    try:
      return self._finish()
    except (tf.errors.OpError, OSError) as error:
      path = checkpoints_lib.failed_write(error, self.config.model_dir)
      if path is None:
        raise
      if os.path.dirname(os.path.abspath(path)) != os.path.abspath(self.config.model_dir):
        # Deeper than the JSON files: inside the SavedModel's staging folder, removed by now.
        path = os.path.join(self.config.model_dir, "saved_model")
      raise checkpoints_lib.write_failure(
          path, error, "resumes after the last outer step and writes the exports") from None

  def _summarise(self, period, results, rewards, best):
    step = period + 1
    learning_rate = self.trajectories[0].optimizer.learning_rate
    history = self.theta_history[:step + 1]
    marginals = policy.element_marginals(policy.operation_probabilities(history))
    figures = (step == self.schedule.num_periods or
               time.time() - self._figures_drawn >= self.config.figure_interval_secs)
    if figures:
      self._figures_drawn = time.time()
    with self.writer.as_default():
      if self.augmentation.has_theta:
        summaries.write_policy(self.writer, step, self.theta, marginals.numpy(), figures)
      if self.augmentation.samples_operations:
        summaries.write_lineage(self.writer, step, self.lineage.numpy(), figures)
      summaries.write_outer_step(
          self.writer, step, val_accuracies=np.array([r.validation.accuracy for r in results]),
          normalized_rewards=rewards, train_loss=np.array([r.train_loss for r in results]),
          train_accuracy=np.array([r.train_accuracy for r in results]),
          learning_rate=float(np.asarray(learning_rate)), best_trajectory=best)

  def _log_progress(self, period, accuracies, best, seconds, seconds_per_period):
    start, end = self.schedule.period(period)
    images = (end - start) * self.config.batch_size * self.config.trajectories
    remaining = (self.schedule.num_periods - period - 1) * seconds_per_period
    console.TERMINAL.info(console.format_outer_step(
        period + 1, self.schedule.num_periods, end, self.schedule.total_steps,
        images / seconds, accuracies, best, remaining))

  def _finish(self):
    """Test accuracy of the final w_n* and the exports (saved_model, policy.json, results)."""
    config, data, final = self.config, self.data, self.trajectories[0]  # all equal w_n* now
    results = {"dataset": config.dataset, "model": config.model, "policy": config.policy,
               "best_val_accuracy": float(np.max(self.val_history.numpy())),
               "test_accuracy": None}
    if data.has_test:
      test = pipeline.eval_dataset(data.eval_examples("test"), config.eval_batch_size,
                                   data.mean, data.std)
      evaluation = final.evaluate(test)
      results["test_accuracy"] = float(evaluation.accuracy)
      if data.num_classes >= 5:
        results["test_top5_accuracy"] = float(evaluation.top5_accuracy)
    results.update(
        epochs=config.epochs, trajectories=config.trajectories,
        # The paper's unit of search cost: iterations at batch 1024 (Table 4).
        search_cost_iterations=(config.trajectories * self.schedule.total_steps *
                                config.batch_size / 1024),
        wall_time_s=float(self.wall_time.numpy()))
    plain = float32_copy(final.model, functools.partial(models.build, config.model,
                                                        data.num_classes, data.image_shape))
    export.save_classifier(plain, os.path.join(config.model_dir, "saved_model"), data.mean,
                           data.std, data.image_shape, data.class_names,
                           serving_preprocess=data.serving_preprocess)
    if self.augmentation.has_theta:
      export.write_json(os.path.join(config.model_dir, "policy.json"),
                        policy_file.learned_payload(self.theta, self.lineage))
    elif self.fixed_probabilities is not None:  # the run keeps the p it trained with
      export.write_json(os.path.join(config.model_dir, "policy.json"),
                        policy_file.fixed_payload(self.fixed_probabilities, self.augmentation.path,
                                                  self.lineage))
    export.write_json(os.path.join(config.model_dir, "results.json"), results)
    return results


def float32_copy(model, build):
  """A float32 model with `model`'s weights, outside any strategy: what the run exports.

  Under a mixed policy the variables are float32 already (only the computation is not), so the
  copy holds exactly the trained weights and BatchNorm statistics, and the SavedModel computes in
  float32 whatever --precision trained it: it serves on any device, without bfloat16 or float16
  kernels, and its probabilities do not depend on the training precision's rounding.

  Args:
    model: the trained Keras model (its variables may be mirrored).
    build: () -> a new model of the same architecture.
  """
  plain = trajectory_lib.build_in_precision(build, "float32")
  plain.set_weights(model.get_weights())
  return plain


def results_line(results):
  """One line per run, the same fields in the same order, so Table 2's columns line up."""
  test = results.get("test_accuracy")
  error = "n/a" if test is None else f"{100 * (1 - test):.2f}%"
  return (f"results: dataset={results['dataset']} model={results['model']} "
          f"policy={results['policy']} trajectories={results['trajectories']} "
          f"epochs={results['epochs']} test_error={error} "
          f"best_val_accuracy={results['best_val_accuracy']:.4f} "
          f"search_cost_iterations={results['search_cost_iterations']:.0f} "
          f"wall_time_s={results['wall_time_s']:.0f}")


def run(config, on_outer_step=None, started_at=None):
  """Sets up devices and data, then runs (or resumes) the search in `config.model_dir`.

  In a cluster (--cluster, `ohl_tf.cluster`) every worker calls this with the same settings; it
  returns the results on the chief and None on the other workers.

  Args:
    config: a `run_config.Config`.
    on_outer_step: optional callable, see `OnlineSearch.run`.
    started_at: see `OnlineSearch.run`.
  """
  devices_lib.split_cpu(config.cpu_devices)  # before anything touches a device
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  # Before any local MirroredStrategy: the cluster's collectives come first.
  cluster = cluster_lib.connect(config)
  if cluster:
    cluster.check_same_config(config)
  try:
    # In a cluster only the chief reads and writes model_dir.
    resuming = check_model_dir(config) if not cluster or cluster.is_chief else False
    # Fails before data loads.
    augmentation_policies.parse(config.policy).fixed_probabilities(
        augment.search_space(config.search_space))
    data = datasets.load(config.dataset, data_dir=config.data_dir, val_size=config.val_size,
                         seed=config.seed, image_size=config.image_size or None,
                         test_size=config.test_size, stream=config.folder_stream)
    visible, here = devices_lib.visible_devices(), config.trajectories
    if cluster:  # this worker's devices (TensorFlow lists all) and trajectories
      visible = cluster.local_devices(visible)
      here = len(cluster.local_trajectories(config.trajectories))
    trajectory_devices = devices_lib.split_devices(visible, here)
    ohl = OnlineSearch(config, data, trajectory_devices, cluster)
  except (ValueError, OSError) as error:
    if not cluster:
      raise
    cluster.agree(error, False)
  if cluster:
    resuming = cluster.agree(None, resuming)
  if not cluster or cluster.is_chief:  # every check passed: now write
    start_model_dir(config, resuming)
  console.TERMINAL.info(console.format_summary(
      config, resuming=resuming, schedule=ohl.schedule, trajectory_devices=trajectory_devices,
      learns_theta=ohl.augmentation.learns_theta, cluster=cluster,
      data_description=data.description))
  return ohl.run(on_outer_step, started_at)
