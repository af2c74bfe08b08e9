"""The online search of OHL-Auto-Aug: paper section 3.2, Algorithm 1, docs/loop.md.

  θ = 0; w_1..w_N = w_0
  for each period T:
    every trajectory n trains I steps on images augmented with ops ~ p_θ, counting them (c_n),
    then scores acc_n on the validation split;
    the outer step moves θ by REINFORCE on the normalised accuracies (Adam) and copies the best
    trajectory's weights, BatchNorm statistics and optimizer slots to every other.

This module is the loop: restore, then per period train, outer step, make equal, checkpoint,
summaries and progress; then the exports. Its pieces are elsewhere: the run directory
(`ohl_tf.run_directory`), the trajectories of this process (`ohl_tf.population`), θ's estimators
(`ohl_tf.estimators`), what each --policy does (`ohl_tf.augmentation_policies`) and the other
workers (`ohl_tf.cluster`; `cluster.Local` for one process).

The same loop trains the baselines: with a fixed policy θ does not move, and with one trajectory
(as the paper's baselines) the outer step only validates and checkpoints.
"""

import functools
import math
import os
import time

from absl import logging
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
from ohl_tf import outer_state
from ohl_tf import pipeline
from ohl_tf import population as population_lib
from ohl_tf import run_directory
from ohl_tf import summaries
from ohl_tf import trajectory as trajectory_lib


# The op whose failure `OnlineSearch.run` traces to a file (`folder.file_decoder`'s decode).
_DECODE_OP = "DecodeImage"


def best_trajectory(scores, val_losses):
  """n* of Algorithm 1: the highest score; ties (frequent for accuracy on a small validation
  split) go to the lower validation loss, then to the lower index."""
  scores, val_losses = np.asarray(scores), np.asarray(val_losses)
  return int(np.lexsort((np.arange(len(scores)), val_losses, -scores))[0])


class OnlineSearch:
  """Algorithm 1 over N trajectories, each under its own MirroredStrategy.

  Args:
    config: the run's `run_config.Config`.
    data: a `datasets.ImageDataset`, `datasets.FolderStream` or `datasets.StreamingDataset`.
    trajectory_devices: one list of device names per trajectory of this process
      (`devices.split_devices`).
    cluster: this worker's `cluster.Cluster` (the trajectories here are its
      `local_trajectories`, and only the chief writes), or None for one process
      (`cluster.Local`).
  """

  def __init__(self, config, data, trajectory_devices, cluster=None):
    self.config = config
    self.data = data
    self.cluster = cluster or cluster_lib.Local()
    self.augmentation = augmentation_policies.parse(config.policy)
    self.space = augment.search_space(config.search_space)
    self.fixed_probabilities = self.augmentation.fixed_probabilities(self.space)
    self.estimator = self.augmentation.estimator(config.estimator)
    for message in self.augmentation.warnings(config):
      logging.warning("%s", message)
    self.population = population_lib.Population(config, data, self.augmentation, self.estimator,
                                                self.space, trajectory_devices, self.cluster)
    self.schedule = self.population.schedule
    self._figures_drawn = -math.inf  # when `_summarise` last drew TensorBoard's figures
    self.outer = outer_state.OuterState(config, self.augmentation, self.estimator, self.space,
                                        self.schedule.num_periods, self.fixed_probabilities)
    # The checkpoint's objects by name (`run_directory`): the outer state and each trajectory.
    self.checkpointed = {
        **self.outer.checkpointed(),
        **{run_directory.trajectory_key(t.index):
           tf.train.Checkpoint(model=t.model, optimizer=t.optimizer)
           for t in self.trajectories}}  # in a cluster, the chief's
    self.checkpoint = tf.train.Checkpoint(**self.checkpointed)
    # Nothing is written to model_dir before `run`, so a run that fails to build loses nothing.
    self.checkpoints = None
    self.writer = None

  @property
  def trajectories(self):
    """The trajectories of this process (`population.Population.trajectories`)."""
    return self.population.trajectories

  def _restore(self):
    """Restores the latest checkpoint (on the chief); returns the outer step it holds.

    `run`'s `run_directory.check` has set aside the checkpoints that cannot be read.
    """
    if not self.cluster.is_chief:
      return int(self.outer.outer_step.numpy())
    # Two: when the newest is damaged (e.g. a crash while the disk wrote it), the other is one
    # period older, so a damaged file costs at most one period.
    self.checkpoints = tf.train.CheckpointManager(
        self.checkpoint, run_directory.path(self.config.model_dir, run_directory.CHECKPOINTS),
        max_to_keep=2)
    self.writer = tf.summary.create_file_writer(
        run_directory.path(self.config.model_dir, run_directory.LOGS))
    path = self.checkpoints.latest_checkpoint
    if path:
      saved = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
      if run_directory.LINEAGE not in saved:
        logging.warning("%s predates the lineage record: it counts from outer step %d on.",
                        path, int(tf.train.load_checkpoint(path).get_tensor(
                            run_directory.variable_key(run_directory.OUTER_STEP))))
      # A run checkpointed by another layout of workers may lack some trajectories here: after
      # an outer step all are equal, so they take the first one's state (`start`).
      checkpoint = self.checkpoint
      if not saved.issuperset(self.checkpointed):
        checkpoint = tf.train.Checkpoint(**{k: v for k, v in self.checkpointed.items()
                                            if k in saved})
      checkpoint.restore(path).assert_existing_objects_matched()
      self.checkpoint.save_counter.assign(checkpoint.save_counter)
      logging.info("Resuming %s at outer step %d.", path, int(self.outer.outer_step.numpy()))
    return int(self.outer.outer_step.numpy())

  def start(self):
    """Restores the latest checkpoint, if any, and makes every worker start from the chief's
    state: θ, its Adam state, the counters and histories, and in every trajectory its first
    trajectory's (w_0, or the restored w_n*). Returns the outer step to continue from."""
    self._restore()
    outer = self.outer.variables()
    for variable, value in zip(outer, self.cluster.broadcast([v.numpy() for v in outer], 0)):
      variable.assign(value)
    self.population.make_equal(0)  # one w_0 for all (Algorithm 1)
    return int(self.outer.outer_step.numpy())

  def run(self, on_outer_step=None, started_at=None):
    """Runs the remaining periods, then exports; returns the results dict (in a cluster: the
    chief's; None on the other workers, which write nothing).

    Args:
      on_outer_step: optional callable, given after every outer step a dict with "period",
        "op_counts" (int [N, K], what each trajectory applied), "accuracies", "scores",
        "rewards" (normalised, [N]), "best", "perturbations" ([N, E], element_es's ε_n;
        zeros for the other estimators) and "train_seconds" ([N], each trajectory's training
        time in the period, validation excluded).
      started_at: `time.monotonic()` when the command started, from which the terminal reports
        the time to the first training step; None: from this call.

    Raises:
      ValueError: in one process, a streamed folder's image failed to decode (the message names
        the file and where the run stopped).
    """
    try:
      return self._run(on_outer_step, started_at)
    except tf.errors.InvalidArgumentError as error:
      bad_file = self._bad_file(error)
      if bad_file is None:
        raise
      raise ValueError(f"{self._where_stopped()}. {bad_file}") from error

  def _bad_file(self, error):
    """The ValueError naming the streamed folder's file that `error` failed to decode (or that
    is of another size), found by decoding the folder's files (TensorFlow's error does not name
    it); None when `error` is not a decode's, the data is not a streamed folder, no file fails
    alone, or the run has other workers (they stop at once only if this one does)."""
    if (_DECODE_OP not in error.message or self.cluster.distributed or
        not isinstance(self.data, datasets.FolderStream) or self.data.check_files is None):
      return None
    console.TERMINAL.info("An image failed to decode: decoding the files of %s to name it",
                          self.data.name)
    try:
      self.data.check_every_file()
    except ValueError as found:
      return found
    except tf.errors.OpError:  # e.g. a file removed since: the original error says more
      return None
    return None

  def _where_stopped(self):
    """Where the run stopped, and what resuming it takes (its last checkpoint, if any)."""
    done, total = int(self.outer.outer_step.numpy()), self.schedule.num_periods
    where = ("after its last outer step, evaluating the test split" if done == total else
             f"in outer step {done + 1} of {total}")
    kept = (f"its checkpoint of outer step {done} is kept: replace the file and run the same "
            "command again to resume" if done else
            "no outer step had completed: replace the file and run the same command again")
    return f"The run stopped {where} ({kept})"

  def _run(self, on_outer_step, started_at):
    started_at = time.monotonic() if started_at is None else started_at
    first = self.start()
    self.cluster.start_watchdog()
    num_periods = self.schedule.num_periods
    started = time.time()
    try:
      if first < num_periods:
        self.population.prepare(first)  # every pipeline and traced step
        console.TERMINAL.info("first training step %.1f s after the start",
                              time.monotonic() - started_at)
      for period in range(first, num_periods):
        self.cluster.step = period + 1
        period_start = time.time()
        results, counts, bad_steps = self.population.gather(
            self.population.train(period, self.outer.sampling_log_probs(period)))
        self.population.check_finite(period, bad_steps)
        accuracies = np.array([r.validation.accuracy for r in results], np.float32)
        scores = (accuracies if self.config.reward == "accuracy" else
                  -np.array([r.validation.loss for r in results], np.float32))
        perturbations = self.outer.perturbations(period)
        best = best_trajectory(scores, [r.validation.loss for r in results])
        rewards = self.outer.update(tf.constant(accuracies), tf.constant(scores), perturbations,
                                     tf.constant(best, tf.int32), tf.constant(counts)).numpy()
        self.population.make_equal(best)
        if on_outer_step:
          on_outer_step({"period": period, "op_counts": counts, "accuracies": accuracies,
                         "scores": scores, "rewards": rewards, "best": best,
                         "perturbations": perturbations.numpy(),
                         "train_seconds": np.array([r.train_seconds for r in results])})
        self.outer.wall_time.assign_add(time.time() - period_start)
        if self.cluster.is_chief:
          checkpoints_lib.save(self.checkpoints, period + 1)
          self._summarise(period, results, rewards, best)
        self._log_progress(period, accuracies, best, time.time() - period_start,
                           (time.time() - started) / (period + 1 - first))
    finally:
      self.population.close()
    results = self._export() if self.cluster.is_chief else None
    # No worker leaves before all are done (an early exit looks like a crash).
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
        path = run_directory.path(self.config.model_dir, run_directory.SAVED_MODEL)
      raise checkpoints_lib.write_failure(
          path, error, "resumes after the last outer step and writes the exports") from None

  def _summarise(self, period, results, rewards, best):
    step = period + 1
    learning_rate = self.trajectories[0].optimizer.learning_rate
    figures = (step == self.schedule.num_periods or
               time.time() - self._figures_drawn >= self.config.figure_interval_secs)
    if figures:
      self._figures_drawn = time.time()
    with self.writer.as_default():
      self.outer.summarise(self.writer, figures)
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
               "best_val_accuracy": float(np.max(self.outer.val_history.numpy())),
               "test_accuracy": None}
    if data.has_test:
      test = pipeline.eval_dataset(data.eval_examples("test"), config.eval_batch_size,
                                   data.mean, data.std)
      evaluation = final.evaluator.evaluate(test)
      results["test_accuracy"] = float(evaluation.accuracy)
      if data.num_classes >= 5:
        results["test_top5_accuracy"] = float(evaluation.top5_accuracy)
    results.update(
        epochs=config.epochs, trajectories=config.trajectories,
        # The paper's unit of search cost: iterations at batch 1024 (Table 4).
        search_cost_iterations=(config.trajectories * self.schedule.total_steps *
                                config.batch_size / 1024),
        wall_time_s=float(self.outer.wall_time.numpy()))
    plain = float32_copy(final.model, functools.partial(models.build, config.model,
                                                        data.num_classes, data.image_shape))
    export.save_classifier(plain, run_directory.path(config.model_dir, run_directory.SAVED_MODEL),
                           data.mean, data.std, data.image_shape, data.class_names,
                           serving_preprocess=data.serving_preprocess)
    payload = self.outer.policy_payload()
    if payload is not None:
      export.write_json(run_directory.path(config.model_dir, run_directory.POLICY), payload)
    export.write_json(run_directory.path(config.model_dir, run_directory.RESULTS), results)
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
  cluster.check_same_config(config)
  try:
    # In a cluster only the chief reads and writes model_dir.
    resuming = run_directory.check(config) if cluster.is_chief else False
    # Fails before data loads.
    augmentation_policies.parse(config.policy).fixed_probabilities(
        augment.search_space(config.search_space))
    data = datasets.load(config.dataset, data_dir=config.data_dir, val_size=config.val_size,
                         seed=config.seed, image_size=config.image_size or None,
                         test_size=config.test_size, stream=config.folder_stream)
    # This worker's devices (TensorFlow lists every worker's) and trajectories.
    trajectory_devices = devices_lib.split_devices(
        cluster.local_devices(devices_lib.visible_devices()),
        len(cluster.local_trajectories(config.trajectories)))
    ohl = OnlineSearch(config, data, trajectory_devices, cluster)
  except (ValueError, OSError) as error:
    cluster.agree(error, False)  # raises it here, and a `WorkerFailedError` on the others
  resuming = cluster.agree(None, resuming)
  if cluster.is_chief:  # every check passed: now write
    run_directory.start(config, resuming)
  console.TERMINAL.info(console.format_summary(
      config, resuming=resuming, schedule=ohl.schedule, trajectory_devices=trajectory_devices,
      estimator=ohl.estimator.description(config.es_sigma, config.es_groups), cluster=cluster,
      data_description=data.description))
  return ohl.run(on_outer_step, started_at)
