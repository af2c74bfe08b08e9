r"""Do short periods train as fast as long ones? Training images/s at I = 4 vs I = one epoch.

Every period ends with an outer step, and the input of the next period must sample with the new
θ; a trainer that rebuilt its `tf.data` pipelines each period paid their start-up (about 0.5-1 s
a trajectory here) every few steps. The trainer keeps one pipeline per trajectory for the whole
run (`TrainPipeline.run_dataset` and its `SamplingFeed`), so a period of 4 steps should train at
nearly the rate of a period of one epoch. In one process, the same OHL run (N trajectories,
--policy=ohl) twice, I = 4 and I = one epoch; training images/s counts the time of every
trajectory's `train` and of building its input (validation and the outer step are excluded:
they are per period by definition). Target: short / long >= 0.9.

  python benchmarks/period_length.py            # synthetic data, resnet8, ~3 min on 2 cores
"""

import datetime
import pathlib
import sys
import tempfile
import time

from absl import app
from absl import flags
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from ohl_tf import datasets  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import run_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import run_directory  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import search  # pylint: disable=g-import-not-at-top,wrong-import-position
import reporting  # pylint: disable=g-import-not-at-top,wrong-import-position

_TRAJECTORIES = flags.DEFINE_integer("trajectories", 4, "N.")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Epochs of each run.")
_SHORT = flags.DEFINE_integer("short_period", 4, "I of the short run, in steps.")
_TRAIN_SUBSET = flags.DEFINE_integer("train_subset", 2048, "Training images.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Batch size of a trajectory.")


def training_rate(inner_steps, data, model_dir):
  """(images/s of training, periods) of one OHL run with periods of `inner_steps`: the time of
  building every trajectory's input (`Population.prepare`) and of every trajectory's training
  in every period (the "train_seconds" of each outer step)."""
  config = run_config.Config(
      dataset="synthetic", model="resnet8", trajectories=_TRAJECTORIES.value,
      epochs=_EPOCHS.value, inner_steps=inner_steps, batch_size=_BATCH_SIZE.value, lr=0.05,
      cutout=8, val_size=256, eval_batch_size=256, train_subset=_TRAIN_SUBSET.value,
      model_dir=model_dir)
  ohl = search.OnlineSearch(config, data, [["/cpu:0"]] * config.trajectories)
  run_directory.start(config, resuming=False)
  start = time.perf_counter()
  ohl.population.prepare(0)  # what `run` would do first: the run keeps these inputs
  seconds = [time.perf_counter() - start]
  ohl.run(on_outer_step=lambda step: seconds.append(step["train_seconds"].sum()))
  images = ohl.schedule.total_steps * config.batch_size * config.trajectories
  return images / sum(seconds), ohl.schedule.num_periods


def main(argv):
  del argv
  data = datasets.load("synthetic", val_size=256, seed=0)
  steps_per_epoch = _TRAIN_SUBSET.value // _BATCH_SIZE.value
  rates = {}
  for inner_steps in (_SHORT.value, 0, _SHORT.value, 0):  # interleaved: the machine drifts
    with tempfile.TemporaryDirectory() as model_dir:
      rate, periods = training_rate(inner_steps, data, model_dir)
    rates.setdefault(inner_steps, []).append(rate)
    print(f"  I = {inner_steps or steps_per_epoch:3d} steps ({periods:2d} periods): "
          f"{rate:7.0f} training images/s", flush=True)
  short, long = max(rates[_SHORT.value]), max(rates[0])
  print(f"\nperiod_length, {datetime.datetime.now():%Y-%m-%d %H:%M}, {reporting.machine()}, "
        f"TensorFlow {tf.__version__}")
  print(f"  {_TRAJECTORIES.value} trajectories, resnet8, batch {_BATCH_SIZE.value}, "
        f"{_EPOCHS.value} epochs of {steps_per_epoch} steps; best of 2 runs each")
  print(f"  short (I = {_SHORT.value}) / long (I = {steps_per_epoch}) = {short / long:.3f}   "
        f"target >= 0.9: {'met' if short / long >= 0.9 else 'NOT met'}")


if __name__ == "__main__":
  app.run(main)
