r"""Training images/s of one trajectory with --augment_on=host vs --augment_on=device.

Under "host" the `tf.data` pipeline applies each batch's sampled OHL operations, Cutout and
standardisation, in its own threads, while the previous step trains; under "device" it yields
uint8 images and the replica's training step does that work on its device before the forward
pass (`pipeline.TrainPipeline.device_augmentation`). On a CPU both are the same processor, so the
question here is only whether overlapping the augmentation with the step (host) beats running it
inside the step (device); what a GPU gains (the host no longer the bottleneck) is not measurable
on this machine.

In one process: one trajectory per setting, same model, data, seed and OHL operations from the
uniform p, each over its persistent pipeline (`run_dataset`, as the trainer); after a warm-up,
rounds of `--steps` steps alternate between the two (host, device, then device, host, ...) so
that the shared machine's drift hits both alike. Prints images/s per round and the median
device / host ratio, with the load average.

  python benchmarks/augment_on.py                  # resnet8, batch 128, ~2 min on 2 cores
  python benchmarks/augment_on.py --replicas=2     # each trajectory on 2 logical CPU devices
"""

import datetime
import os
import pathlib
import statistics
import sys
import time

from absl import app
from absl import flags
import keras
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import datasets  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import devices  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import schedule as schedule_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import trajectory  # pylint: disable=g-import-not-at-top,wrong-import-position
import reporting  # pylint: disable=g-import-not-at-top,wrong-import-position

_DATASET = flags.DEFINE_string("dataset", "synthetic", "--dataset spec (in-memory datasets).")
_TRAIN_SUBSET = flags.DEFINE_integer("train_subset", 2048, "Training images.")
_MODEL = flags.DEFINE_string("model", "resnet8", "Model.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Batch size of the trajectory.")
_CUTOUT = flags.DEFINE_integer("cutout", 16, "Cutout side.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps per round and setting.")
_ROUNDS = flags.DEFINE_integer("rounds", 4, "Timed rounds per setting.")
_WARMUP = flags.DEFINE_integer("warmup_steps", 8, "Untimed steps first (tracing, prefetch).")
_REPLICAS = flags.DEFINE_integer("replicas", 1, "Logical CPU devices of the trajectory.")


def _trainer(data, source, schedule, augment_on, replica_devices):
  """(trajectory, iterator over its persistent pipeline) of one --augment_on setting."""
  train_data = pipeline.TrainPipeline(source, schedule, data.mean, data.std, seed=0,
                                      cutout_size=_CUTOUT.value, base=data.train_base,
                                      augment_on=augment_on)
  keras.utils.set_random_seed(0)
  t = trajectory.Trajectory(
      0, replica_devices, lambda: models.build(_MODEL.value, data.num_classes, data.image_shape),
      lambda: keras.optimizers.SGD(0.05, momentum=0.9), 5e-4, _BATCH_SIZE.value,
      finish_batch=train_data.device_augmentation(sampled=True))
  feed = pipeline.SamplingFeed.uniform(schedule.num_periods)
  return t, t.input_iterator(train_data.run_dataset(0, 0, feed))


def _images_per_second(t, iterator):
  start = time.perf_counter()
  t.train(iterator, _STEPS.value)
  return _STEPS.value * _BATCH_SIZE.value / (time.perf_counter() - start)


def main(argv):
  del argv
  devices.split_cpu(_REPLICAS.value)  # before anything touches a device
  replica_devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  data = datasets.load(_DATASET.value, val_size=256, seed=0)
  source = pipeline.MemorySource.from_arrays(data.train_images[:_TRAIN_SUBSET.value],
                                             data.train_labels[:_TRAIN_SUBSET.value])
  steps = _WARMUP.value + _ROUNDS.value * _STEPS.value
  steps_per_epoch = source.num_examples // _BATCH_SIZE.value
  schedule = schedule_lib.Schedule(source.num_examples, _BATCH_SIZE.value,
                                   epochs=-(-steps // steps_per_epoch))
  trainers = {where: _trainer(data, source, schedule, where, replica_devices)
              for where in pipeline.AUGMENT_ON}
  for t, iterator in trainers.values():
    t.train(iterator, _WARMUP.value)
  load_before = reporting.load_average()
  rates = {where: [] for where in pipeline.AUGMENT_ON}
  for round_index in range(_ROUNDS.value):
    order = pipeline.AUGMENT_ON if round_index % 2 == 0 else pipeline.AUGMENT_ON[::-1]
    for where in order:
      rates[where].append(_images_per_second(*trainers[where]))
    print(f"  round {round_index + 1}: " + ", ".join(
        f"{where} {rates[where][-1]:6.0f}" for where in pipeline.AUGMENT_ON) +
          f" images/s; device / host {rates['device'][-1] / rates['host'][-1]:.3f}", flush=True)
  ratios = [d / h for d, h in zip(rates["device"], rates["host"])]
  print(f"\naugment_on, {datetime.datetime.now():%Y-%m-%d %H:%M}, {reporting.machine()}, "
        f"TensorFlow {tf.__version__}")
  print(f"  {_MODEL.value}, batch {_BATCH_SIZE.value} on {len(replica_devices)} "
        f"replica(s), {_DATASET.value} {data.image_shape[0]}x{data.image_shape[1]}, OHL "
        f"operations (uniform p), Cutout {_CUTOUT.value}; {_ROUNDS.value} rounds of "
        f"{_STEPS.value} steps per setting, interleaved")
  for where in pipeline.AUGMENT_ON:
    print(f"  {where:>6}: median {statistics.median(rates[where]):6.0f} images/s "
          f"({min(rates[where]):.0f} .. {max(rates[where]):.0f})")
  print(f"  device / host: median {statistics.median(ratios):.3f} "
        f"({min(ratios):.3f} .. {max(ratios):.3f}); load average {load_before} before the "
        f"timed rounds, {reporting.load_average()} after")


if __name__ == "__main__":
  app.run(main)
