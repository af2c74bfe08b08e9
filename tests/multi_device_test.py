"""Trajectories of several replicas and trajectories in concurrent threads, on logical CPU
devices: BatchNorm statistics kept equal on every replica, and no concurrent graph building."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from ohl_tf import batch
from ohl_tf import datasets
from ohl_tf import devices
from ohl_tf import pipeline
from ohl_tf import run_config
from ohl_tf import search
from ohl_tf import trajectory

_CPUS = [f"/device:CPU:{i}" for i in range(4)]


@pytest.fixture(scope="module")
def small_data(cifar_images):
  labels = (cifar_images.reshape(len(cifar_images), -1, 3).mean(1).argmax(1)).astype(np.int32)
  return datasets.ImageDataset(
      name="dominant colour", train_images=cifar_images[:160], train_labels=labels[:160],
      val_images=cifar_images[160:192], val_labels=labels[160:192],
      test_images=cifar_images[192:], test_labels=labels[192:],
      class_names=("red", "green", "blue"), mean=(125.3, 123.0, 113.9), std=(63.0, 62.1, 66.7))


def _config(tmp_path, **overrides):
  settings = dict(model="resnet8", trajectories=1, epochs=1, inner_steps=2, batch_size=16,
                  lr=0.05, val_size=32, eval_batch_size=32, model_dir=str(tmp_path / "run"))
  settings.update(overrides)
  return run_config.Config(**settings)


def _replica_values(variable):
  return [r.numpy() for r in variable.value.values]


def test_every_replica_holds_the_same_batchnorm_statistics_after_training(small_data):
  t = trajectory.Trajectory(
      0, _CPUS[:2], lambda: models.build("resnet8", 3, (32, 32, 3)),
      lambda: keras.optimizers.SGD(0.05), 5e-4, 16, count_operations=False)
  dataset = tf.data.Dataset.from_tensor_slices(batch.Batch(
      tf.cast(small_data.train_images[:64], tf.float32) / 255.0, small_data.train_labels[:64],
      tf.fill([64], pipeline.NO_OPERATION), {})).batch(16)
  moving = [v for v in t.model.non_trainable_variables if "moving" in v.path]
  assert len(moving) == 2 * 7  # resnet8: 7 BatchNormalization layers
  # Without the sync each replica keeps the statistics of its own shard (Keras: aggregation
  # "none"), which is the bug this guards against.
  t._train_function = None
  iterator = t.input_iterator(dataset)
  t._train_function(iterator, tf.constant(4))
  before = [_replica_values(v) for v in moving]
  assert any(not np.array_equal(a, b) for a, b in before)
  t.sync_replicas()
  for variable, (a, b) in zip(moving, before):
    first, second = _replica_values(variable)
    np.testing.assert_array_equal(first, second, err_msg=variable.path)
    np.testing.assert_allclose(first, (a + b) / 2, rtol=1e-6, err_msg=variable.path)
  # `train` syncs by itself.
  t.reset_period()
  t.train(t.input_iterator(dataset), 4)
  for variable in moving:
    first, second = _replica_values(variable)
    np.testing.assert_array_equal(first, second, err_msg=variable.path)


def test_the_exported_model_scores_what_the_run_reported_on_two_replicas(tmp_path, small_data):
  config = _config(tmp_path, epochs=2, policy="cutout")
  ohl = search.OnlineSearch(config, small_data, [_CPUS[:2]])
  results = ohl.run()
  served = tf.saved_model.load(os.path.join(config.model_dir, "saved_model"))
  outputs = served.signatures["serving_default"](images=tf.constant(small_data.test_images))
  accuracy = np.mean(outputs["class_id"].numpy() == small_data.test_labels)
  assert accuracy == pytest.approx(results["test_accuracy"], abs=1e-9)
  assert outputs["probabilities"].shape == (len(small_data.test_images), 3)
  assert set(outputs["class_name"].numpy()) <= {b"red", b"green", b"blue"}


# 100 periods: the crash this guards against came within tens of periods.
@pytest.mark.parametrize("trajectories,cpu_devices,periods", [(3, 2, 100), (4, 4, 20)])
def test_concurrent_trajectories_survive_many_short_periods(tmp_path, small_data, trajectories,
                                                            cpu_devices, periods):
  """Each period steps every trajectory's persistent pipeline in its own thread; pipelines and
  steps built in two threads at once crashed the process within tens of periods (SIGSEGV in
  tf.data map tracing)."""
  # 32 training images, batch 16: 2 steps an epoch, one step a period.
  config = _config(tmp_path, trajectories=trajectories, train_subset=32, epochs=periods // 2,
                   inner_steps=1, policy="none")  # no policy figures: cheap outer steps
  trajectory_devices = devices.split_devices(_CPUS[:cpu_devices], trajectories)
  assert len({tuple(d) for d in trajectory_devices}) == cpu_devices  # threads really run
  ohl = search.OnlineSearch(config, small_data, trajectory_devices)
  results = ohl.run()
  assert int(ohl.outer.outer_step.numpy()) == periods == ohl.schedule.num_periods
  assert 0 <= results["test_accuracy"] <= 1


@pytest.mark.parametrize("num_devices", [1, 2])
def test_cached_validation_scores_what_a_fresh_pipeline_scores(small_data, num_devices):
  t = trajectory.Trajectory(
      0, _CPUS[:num_devices], lambda: models.build("resnet8", 3, (32, 32, 3)),
      lambda: keras.optimizers.SGD(0.05), 5e-4, 16, count_operations=False)
  # 32 images in batches of 12: a short last batch, split unevenly over two replicas.
  val = pipeline.eval_dataset(small_data.eval_examples("val"), 12, small_data.mean,
                              small_data.std)
  fresh = t.evaluator.evaluate(val)
  cached = t.evaluator.validation_passes(val, cache=True)
  assert cached() is cached()  # read once, kept
  assert len(cached()) == 3
  for _ in range(2):  # and scored again at every outer step
    assert t.evaluator.evaluate(cached()) == fresh
  read = t.evaluator.validation_passes(val, cache=False)
  for _ in range(2):  # a new iterator of the same distributed dataset each time
    assert t.evaluator.evaluate(read()) == fresh
