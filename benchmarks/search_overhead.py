r"""What the online search costs on top of training: OHL with N trajectories vs N plain runs.

In one process, on the same data, model and steps:
  (a) an OHL run (`ohl_tf.search`) with N trajectories: training, then every period the
      validation of each trajectory, the REINFORCE step, the broadcast, a checkpoint and the
      TensorBoard summaries;
  (b) one trajectory trained for the same steps on the same persistent pipeline (operations
      sampled from the uniform p) with none of the outer-step work, timed and multiplied by N;
  (c) Keras `model.fit` of the same model on the same input, the loop a user would otherwise
      write: (c) / (b) is the trainer's throughput against it.
It prints (a) / (N x b); the target is <= 1.10. Trajectories share the CPU here, so N plain runs
are what the N trajectories replace.

  python benchmarks/search_overhead.py                        # synthetic data, ~6 min on 2 cores
  python benchmarks/search_overhead.py --inner_steps=10       # ten times more outer steps
"""

import dataclasses
import datetime
import pathlib
import sys
import tempfile
import time

from absl import app
from absl import flags
import keras
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import models  # pylint: disable=g-import-not-at-top
from ohl_tf import cluster  # pylint: disable=g-import-not-at-top
from ohl_tf import datasets  # pylint: disable=g-import-not-at-top
from ohl_tf import pipeline  # pylint: disable=g-import-not-at-top
from ohl_tf import population  # pylint: disable=g-import-not-at-top
from ohl_tf import run_config  # pylint: disable=g-import-not-at-top
from ohl_tf import run_directory  # pylint: disable=g-import-not-at-top
from ohl_tf import search  # pylint: disable=g-import-not-at-top
from ohl_tf import trajectory  # pylint: disable=g-import-not-at-top
import reporting  # pylint: disable=g-import-not-at-top

_TRAJECTORIES = flags.DEFINE_integer("trajectories", 4, "N.")
_EPOCHS = flags.DEFINE_integer("epochs", 10, "Epochs of each run.")
_INNER_STEPS = flags.DEFINE_integer("inner_steps", 0, "I (0 = one epoch, the paper's default).")
_TRAIN_SUBSET = flags.DEFINE_integer(
    "train_subset", 0, "Training images (0 = all 4,500 synthetic ones beside the 500 of "
    "--val_size: 9 per validation image, the proportion of the paper's CIFAR-10 split, 45,000 "
    "and 5,000, which sets what validating every outer step costs against training).")
_VAL_SIZE = flags.DEFINE_integer("val_size", 500, "Validation images.")
_MODEL = flags.DEFINE_string("model", "resnet8", "Model.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Batch size of a trajectory.")


def _config(model_dir):
  return run_config.Config(dataset="synthetic", model=_MODEL.value, trajectories=_TRAJECTORIES.value,
                       epochs=_EPOCHS.value, inner_steps=_INNER_STEPS.value,
                       batch_size=_BATCH_SIZE.value, lr=0.05, cutout=8, val_size=_VAL_SIZE.value,
                       train_subset=_TRAIN_SUBSET.value, model_dir=model_dir)


def time_ohl(config, data):
  """(seconds to the end of the last outer step, seconds including the exports, the search)."""
  ohl = search.OnlineSearch(config, data, [["/cpu:0"]] * config.trajectories)
  run_directory.start(config, resuming=False)
  outer_steps_done = []
  start = time.perf_counter()
  ohl.run(on_outer_step=lambda _: outer_steps_done.append(time.perf_counter()))
  return outer_steps_done[-1] - start, time.perf_counter() - start, ohl


def time_plain_training(config, data, ohl):
  """One trajectory, set up as the run's (`population.Population` of N = 1), through every period
  of the same persistent pipeline without outer steps (the trainer's own training loop)."""
  schedule = ohl.schedule
  plain = population.Population(
      dataclasses.replace(config, trajectories=1), data, ohl.augmentation, ohl.estimator,
      ohl.space, [["/cpu:0"]], cluster.Local()).trajectories[0]
  feed = pipeline.SamplingFeed.uniform(schedule.num_periods)
  start = time.perf_counter()
  iterator = plain.input_iterator(ohl.population.train_data.run_dataset(0, 0, feed))
  for period in range(schedule.num_periods):
    first, end = schedule.period(period)
    plain.train(iterator, end - first)
  return time.perf_counter() - start


def time_keras_fit(config, data, ohl):
  """The loop a user would otherwise write: Keras `model.fit` of the same model on the same
  `tf.data` input (its ops dropped), with the same SGD; seconds for the same steps."""
  schedule = ohl.schedule
  model = models.build(config.model, data.num_classes, data.image_shape)
  model.compile(optimizer=keras.optimizers.SGD(
      trajectory.learning_rate_schedule(config.lr, schedule.total_steps),
      momentum=config.momentum),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
  dataset = ohl.population.train_data.run_dataset(0, 0, pipeline.SamplingFeed.uniform(schedule.num_periods))
  dataset = dataset.map(lambda images, labels, ops: (images, labels))
  start = time.perf_counter()
  model.fit(dataset, epochs=1, steps_per_epoch=schedule.total_steps, verbose=0)
  return time.perf_counter() - start


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as model_dir:
    config = _config(model_dir)
    data = datasets.load("synthetic", val_size=config.val_size, seed=config.seed)
    ohl_seconds, with_exports, ohl = time_ohl(config, data)
    plain_seconds = time_plain_training(config, data, ohl)
    fit_seconds = time_keras_fit(config, data, ohl)
  ratio = ohl_seconds / (config.trajectories * plain_seconds)
  print(f"\nsearch_overhead, {datetime.datetime.now():%Y-%m-%d %H:%M}, {reporting.machine()}, "
        f"TensorFlow {tf.__version__}")
  print(f"  {config.trajectories} trajectories, {config.model}, {ohl.schedule.total_steps} steps "
        f"of {config.batch_size} in {ohl.schedule.num_periods} outer steps "
        f"(I = {ohl.schedule.period_steps})")
  print(f"  (a) OHL run to its last outer step: {ohl_seconds:8.1f} s "
        f"(with the final test evaluation and exports: {with_exports:.1f} s)")
  print(f"  (b) one plain trajectory:           {plain_seconds:8.1f} s")
  print(f"  (c) Keras model.fit, same input:   {fit_seconds:8.1f} s")
  print(f"  (a) / (N x b) = {ratio:.3f}   target <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'}")
  print(f"  one trajectory's training throughput / model.fit's = {fit_seconds / plain_seconds:.3f}")


if __name__ == "__main__":
  app.run(main)
