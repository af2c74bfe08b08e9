"""Tests of the OHL input pipeline, the trajectory's op counts and the device split."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from ohl_tf import augment
from ohl_tf import datasets
from ohl_tf import devices
from ohl_tf import pipeline
from ohl_tf import policy
from ohl_tf import schedule as schedule_lib
from ohl_tf import trajectory
import pipeline_testing

_MEAN, _STD = (120.0, 115.0, 100.0), (60.0, 61.0, 62.0)


@pytest.fixture(scope="module")
def train_pipeline(cifar_images):
  labels = np.arange(len(cifar_images), dtype=np.int32) % 10
  schedule = schedule_lib.Schedule(len(cifar_images), batch_size=32, epochs=3, inner_steps=5)
  return pipeline.TrainPipeline(pipeline.MemorySource.from_arrays(cifar_images, labels),
                                schedule, _MEAN, _STD, seed=7, cutout_size=16)


_period = pipeline_testing.period_batches
_collect = pipeline_testing.collect


# ---------------------------------------------------------------------------------------------
# The period's data.
# ---------------------------------------------------------------------------------------------

def test_period_data_is_a_pure_function_of_seed_period_and_trajectory(train_pipeline):
  theta = tf.random.stateless_normal([augment.NUM_OPERATIONS], [1, 2])
  first = _collect(_period(train_pipeline, 2, 1, policy.log_operation_probabilities(theta)))
  again = _collect(_period(train_pipeline, 2, 1, policy.log_operation_probabilities(theta)))
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  other_period = _collect(_period(train_pipeline, 3, 1,
                                 policy.log_operation_probabilities(theta)))
  assert not np.array_equal(first[2], other_period[2])
  assert first[0].shape == (5 * 32, 32, 32, 3) and first[0].dtype == np.float32


def test_trajectories_share_images_and_order_but_not_operations(train_pipeline):
  log_probs = policy.log_operation_probabilities(tf.zeros([augment.NUM_OPERATIONS]))
  _, labels_0, ops_0 = _collect(_period(train_pipeline, 1, 0, log_probs))
  _, labels_1, ops_1 = _collect(_period(train_pipeline, 1, 1, log_probs))
  np.testing.assert_array_equal(labels_0, labels_1)
  assert (ops_0 != ops_1).mean() > 0.9
  # Without operations or Cutout, the two trajectories' images are identical (same flip/crop).
  no_cutout = pipeline.TrainPipeline(train_pipeline.source, train_pipeline.schedule, _MEAN, _STD,
                                     seed=7, cutout_size=0)
  images_0, _, ops = _collect(_period(no_cutout, 1, 0, None))
  images_1, _, _ = _collect(_period(no_cutout, 1, 1, None))
  np.testing.assert_array_equal(images_0, images_1)
  assert (ops == pipeline.NO_OPERATION).all()


def test_each_epoch_visits_every_image_once(train_pipeline):
  # Period 0 to the end of epoch 0 (steps 0-7 of 8): one permutation of the first 256 images.
  schedule = schedule_lib.Schedule(256, batch_size=32, epochs=2, inner_steps=8)
  data = pipeline.TrainPipeline(train_pipeline.source, schedule, _MEAN, _STD, seed=7,
                                cutout_size=0)
  labels = _collect(_period(data, 0, 0, None))[1]
  np.testing.assert_array_equal(np.bincount(labels), np.bincount(np.arange(256) % 10))


def test_sampled_operations_follow_p_theta(train_pipeline):
  # θ strongly favours op 37 (ShearX 0.2, ShearX 0.2): p ~ 0.88 by eq. 7 with θ_37 = 10, others -10.
  theta = tf.tensor_scatter_nd_update(tf.fill([augment.NUM_OPERATIONS], -10.0), [[37]], [10.0])
  ops = _collect(_period(train_pipeline, 0, 0, policy.log_operation_probabilities(theta)))[2]
  assert abs((ops == 37).mean() - 1 / (1 + 1295 * float(tf.sigmoid(-10.0)))) < 0.05


def test_per_image_and_batched_paths_give_the_same_bytes_and_operations(train_pipeline):
  # Real CIFAR-10 images, one whole period of 5 batches of 32, Cutout on: only where the
  # operation runs differs (the per-image map or the batch), not what it computes.
  per_image = pipeline.TrainPipeline(train_pipeline.source, train_pipeline.schedule, _MEAN, _STD,
                                     seed=7, cutout_size=16, augment_path="per_image")
  theta = tf.random.stateless_normal([augment.NUM_OPERATIONS], [5, 6])
  log_probs = policy.log_operation_probabilities(theta)
  batched_images, batched_labels, batched_ops = _collect(
      _period(train_pipeline, 1, 2, log_probs))
  images, labels, ops = _collect(_period(per_image, 1, 2, log_probs))
  assert images.shape == (5 * 32, 32, 32, 3)
  np.testing.assert_array_equal(images, batched_images)
  np.testing.assert_array_equal(labels, batched_labels)
  np.testing.assert_array_equal(ops, batched_ops)  # so the op counts are equal too
  assert len(np.unique(ops // augment.NUM_ELEMENTS)) > 20  # most elements were exercised


def test_the_identity_space_samples_its_1369_operations_on_both_paths(train_pipeline):
  # θ puts about half the mass on (Identity, Identity): those images are the images of a run
  # without OHL operations (same base preprocessing and Cutout), bit for bit.
  space = augment.PAPER_IDENTITY
  no_operation = 37 * 36 + 36
  theta = tf.tensor_scatter_nd_update(
      tf.random.stateless_normal([space.num_operations], [1, 2], mean=-7.0, stddev=0.3),
      [[no_operation]], [8.0])
  log_probs = policy.log_operation_probabilities(theta)
  p_none = float(tf.exp(log_probs[no_operation]))
  pipelines = [pipeline.TrainPipeline(train_pipeline.source, train_pipeline.schedule, _MEAN, _STD,
                                      seed=7, cutout_size=16, augment_path=path,
                                      search_space=space)
               for path in pipeline.AUGMENT_PATHS]
  (images, _, ops), (other_images, _, other_ops) = (_collect(_period(p, 1, 2, log_probs))
                                                    for p in pipelines)
  np.testing.assert_array_equal(images, other_images)
  np.testing.assert_array_equal(ops, other_ops)
  assert ops.min() >= 0 and ops.max() < space.num_operations
  assert ((ops // 37 == 36) != (ops % 37 == 36)).any()  # (Identity, e) or (e, Identity) drawn
  untouched = ops == no_operation
  assert abs(untouched.mean() - p_none) < 4 * np.sqrt(p_none * (1 - p_none) / len(ops))
  plain = _collect(_period(pipelines[0], 1, 2, None))[0]
  np.testing.assert_array_equal(images[untouched], plain[untouched])
  assert (images[~untouched] != plain[~untouched]).any()
  feed = pipeline.SamplingFeed.uniform(1, space)
  uniform = policy.log_operation_probabilities(tf.zeros([space.num_operations]))
  np.testing.assert_array_equal(feed.take(), uniform)
  with pytest.raises(ValueError):
    feed.put(tf.zeros([augment.NUM_OPERATIONS]))  # a log p of the paper's space


def test_autoaugment_space_applies_an_element_with_its_probability_on_every_path(
    train_pipeline):
  # All the mass on (ShearY(8) p0.5, Identity): half of the images are sheared (a shear of 0.24
  # moves every image), the other half are those of a run without OHL operations, bit for bit,
  # on the per-image path, the batched path and the replicas' (augment_on="device").
  space = augment.AUTOAUGMENT_CIFAR10
  shear = space.elements.index(augment.Element("ShearY", 8, 0.5))
  op = shear * space.num_elements + space.identity
  log_probs = policy.log_operation_probabilities(
      tf.tensor_scatter_nd_update(tf.fill([space.num_operations], -30.0), [[op]], [30.0]))
  made = lambda **kwargs: pipeline.TrainPipeline(
      train_pipeline.source, train_pipeline.schedule, _MEAN, _STD, seed=7, cutout_size=16,
      search_space=space, **kwargs)
  per_image, batched, on_device = (made(augment_path="per_image"), made(),
                                   made(augment_on="device"))
  images, _, ops = _collect(_period(per_image, 1, 2, log_probs))
  np.testing.assert_array_equal(ops, op)
  np.testing.assert_array_equal(_collect(_period(batched, 1, 2, log_probs))[0], images)
  finish = on_device.device_augmentation(True)
  np.testing.assert_array_equal(
      _collect(finish(b) for b in _period(on_device, 1, 2, log_probs))[0], images)
  plain = _collect(_period(per_image, 1, 2, None))[0]
  untouched = np.all(images == plain, axis=(1, 2, 3))
  assert abs(untouched.mean() - 0.5) < 4 * np.sqrt(0.25 / len(images)), untouched.mean()


@pytest.mark.parametrize("setting,message", [
    (dict(augment_path="per_batch"), "augment_path must be one of batched, per_image"),
    (dict(augment_on="gpu"), "augment_on must be one of host, device"),
    (dict(augment_on="device", augment_path="per_image"),
     "Use augment_on='device' with augment_path='batched'"),
])
def test_where_augmentation_runs_is_checked(train_pipeline, setting, message):
  with pytest.raises(ValueError, match=message):
    pipeline.TrainPipeline(train_pipeline.source, train_pipeline.schedule, _MEAN, _STD, seed=7,
                           **setting)


# ---------------------------------------------------------------------------------------------
# The trajectory counts exactly the operations it trained on.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("augment_path", pipeline.AUGMENT_PATHS)
def test_op_counts_equal_the_operations_applied(train_pipeline, augment_path):
  train_pipeline = pipeline.TrainPipeline(train_pipeline.source, train_pipeline.schedule, _MEAN,
                                          _STD, seed=7, cutout_size=16,
                                          augment_path=augment_path)
  model_fn = lambda: models.build("resnet8", 10, (32, 32, 3))
  t = trajectory.Trajectory(0, ["/cpu:0"], model_fn, lambda: keras.optimizers.SGD(0.01), 5e-4,
                            32)
  theta = tf.random.stateless_normal([augment.NUM_OPERATIONS], [3, 4])
  log_probs = policy.log_operation_probabilities(theta)
  t.train(t.input_iterator(_period(train_pipeline, 0, 0, log_probs)), 5)
  applied = _collect(_period(train_pipeline, 0, 0, log_probs))[2]
  np.testing.assert_array_equal(t.op_counts.numpy(),
                                np.bincount(applied, minlength=augment.NUM_OPERATIONS))
  assert int(t.seen.numpy()) == 160 and t.step == 5
  t.reset_period()
  assert int(tf.reduce_sum(t.op_counts)) == 0 and int(t.seen.numpy()) == 0


# ---------------------------------------------------------------------------------------------
# --augment_on=device: the replicas augment their own shards, with the host's bytes.
# ---------------------------------------------------------------------------------------------

_REPLICA_DEVICES = {1: ["/device:CPU:0"], 2: ["/device:CPU:0", "/device:CPU:1"]}


@pytest.fixture(scope="module")
def on_device(train_pipeline):
  """`train_pipeline` with augment_on="device" (traced once for the tests that use it)."""
  return pipeline.TrainPipeline(train_pipeline.source, train_pipeline.schedule, _MEAN, _STD,
                                seed=7, cutout_size=16, augment_on="device")


def _small_trajectory(devices_of_replicas, finish_batch=None):
  """A trajectory of a small convolutional network with BatchNorm (quicker than resnet8).

  Its convolution has no bias, as before BatchNorm in the project's ResNets: BatchNorm cancels
  such a bias, whose gradient is then rounding noise, and oneDNN's graph rewrite sums it in
  another order when the step's graph differs (here: the augmentation in it, two replicas whose
  batches stay on the host): ulps apart after one step (TF_ENABLE_ONEDNN_OPTS=0: none), while
  every meaningful gradient, and resnet8's whole state, stay bit-identical.
  """
  def build():
    keras.utils.set_random_seed(3)  # the same initial weights for every trajectory built here
    return keras.Sequential([
        keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, strides=2, use_bias=False),
        keras.layers.BatchNormalization(), keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
  return trajectory.Trajectory(0, devices_of_replicas, build,
                               lambda: keras.optimizers.SGD(0.05, momentum=0.9), 5e-4, 32,
                               finish_batch=finish_batch)


@pytest.mark.parametrize("replicas", [1, 2])
def test_each_replica_trains_on_the_host_pipelines_bytes(train_pipeline, on_device, replicas):
  # One period of 5 batches of real CIFAR-10 images, OHL operations and Cutout 16: what each
  # replica's step trains on under "device" is its shard of the host pipeline's batch, exactly.
  t = _small_trajectory(_REPLICA_DEVICES[replicas], on_device.device_augmentation(True))
  log_probs = policy.log_operation_probabilities(
      tf.random.stateless_normal([augment.NUM_OPERATIONS], [5, 6]))
  traced_on = []

  def replica_inputs(shard):
    inputs = t.replica_inputs(shard)  # what `_replica_step` trains on
    traced_on.append(inputs.images.device)
    return inputs

  step = tf.function(lambda batch: t.strategy.run(replica_inputs, args=(batch,)))
  uint8_batches = _period(on_device, 1, 2, log_probs)
  assert uint8_batches.element_spec.images.dtype == tf.uint8
  assert set(uint8_batches.element_spec.augmentation) == {"signs", "cutout_centres"}
  iterator = t.input_iterator(uint8_batches)
  ops_seen = []
  for host_batch in _period(train_pipeline, 1, 2, log_probs):
    trained_on = step(next(iterator))
    assert host_batch.finished and trained_on.finished
    for field in ("images", "labels", "ops"):
      got = t.strategy.experimental_local_results(getattr(trained_on, field))
      assert len(got) == replicas
      np.testing.assert_array_equal(np.concatenate([shard.numpy() for shard in got]),
                                    getattr(host_batch, field).numpy())
    ops_seen.append(host_batch.ops.numpy())
  assert len(ops_seen) == 5 and next(iterator, None) is None
  assert len(np.unique(np.concatenate(ops_seen) // augment.NUM_ELEMENTS)) > 20
  where = lambda name: (tf.DeviceSpec.from_string(name).device_type,
                        tf.DeviceSpec.from_string(name).device_index)
  assert [where(d) for d in traced_on] == [where(d) for d in _REPLICA_DEVICES[replicas]]


@pytest.mark.parametrize("replicas", [1, 2])
def test_host_and_device_augmentation_train_the_same_weights_and_counts(train_pipeline,
                                                                        on_device, replicas):
  log_probs = policy.log_operation_probabilities(
      tf.random.stateless_normal([augment.NUM_OPERATIONS], [3, 4]))
  trained = []
  for data, finish_batch in ((train_pipeline, None),
                             (on_device, on_device.device_augmentation(True))):
    t = _small_trajectory(_REPLICA_DEVICES[replicas], finish_batch)
    t.train(t.input_iterator(_period(data, 0, 1, log_probs)), 3)
    trained.append(t)
  host, device = trained
  assert int(tf.reduce_sum(device.op_counts)) == 3 * 32 and device.step == 3
  np.testing.assert_array_equal(device.op_counts.numpy(), host.op_counts.numpy())
  for a, b in zip(host.model.get_weights(), device.model.get_weights()):
    np.testing.assert_array_equal(b, a)
  assert float(device.loss_sum.numpy()) == float(host.loss_sum.numpy())


def test_trajectory_rejects_a_batch_not_divisible_by_its_replicas():
  strategy_devices = [d.name for d in tf.config.list_logical_devices("CPU")][:3]
  with pytest.raises(ValueError, match=r"--batch_size=32 is not divisible by the 3 replicas"):
    trajectory.Trajectory(0, strategy_devices, lambda: None, lambda: None, 0.0, 32)


# ---------------------------------------------------------------------------------------------
# Devices.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_devices,num_trajectories,expected", [
    (8, 8, [[0], [1], [2], [3], [4], [5], [6], [7]]),
    (8, 4, [[0, 1], [2, 3], [4, 5], [6, 7]]),
    (8, 3, [[0, 1], [2, 3], [4, 5]]),  # the 2 left over stay idle
    (2, 4, [[0], [1], [0], [1]]),  # more trajectories than devices: they share
    (1, 4, [[0], [0], [0], [0]]),
])
def test_split_devices(num_devices, num_trajectories, expected):
  names = [f"/gpu:{i}" for i in range(num_devices)]
  assert devices.split_devices(names, num_trajectories) == [[names[i] for i in group]
                                                            for group in expected]


def test_split_devices_rejects_no_trajectories():
  with pytest.raises(ValueError, match="trajectories must be >= 1"):
    devices.split_devices(["/cpu:0"], 0)


# ---------------------------------------------------------------------------------------------
# Streamed sources (ImageNet): periods cut one run-long sequence of examples.
# ---------------------------------------------------------------------------------------------

def _ids_and_labels(source, start, end, epoch_size):
  pairs = [(int(i), int(y)) for i, _, y in source.examples(start, end, epoch_size, seed=3)]
  return [i for i, _ in pairs], [y for _, y in pairs]


def test_stream_source_periods_are_slices_of_the_run(imagenet_data_dir):
  data = datasets.load("imagenet2012", data_dir=imagenet_data_dir, val_size=5, image_size=32)
  source = pipeline.StreamSource(data)
  epoch_size = 18  # 9 steps of 2 of the 19 records; the 19th is dropped each epoch
  whole_ids, whole_labels = _ids_and_labels(source, 0, 2 * epoch_size, epoch_size)
  assert whole_ids == list(range(2 * epoch_size))
  pieces = [_ids_and_labels(source, start, min(start + 8, 36), epoch_size)
            for start in range(0, 36, 8)]  # periods that straddle the epoch boundary
  assert sum((ids for ids, _ in pieces), []) == whole_ids
  assert sum((labels for _, labels in pieces), []) == whole_labels
  # Each epoch is its own shuffle of the same records.
  assert whole_labels[:epoch_size] != whole_labels[epoch_size:]


def test_stream_pipeline_batches_fixed_size_crops(imagenet_data_dir):
  data = datasets.load("imagenet2012", data_dir=imagenet_data_dir, val_size=5, image_size=32)
  schedule = schedule_lib.Schedule(data.num_train, batch_size=4, epochs=1, inner_steps=2)
  train = pipeline.TrainPipeline(pipeline.StreamSource(data), schedule, data.mean,
                                 data.std, seed=1, cutout_size=0, base=data.train_base)
  theta = tf.zeros([augment.NUM_OPERATIONS])
  images, labels, ops = _collect(_period(train, 1, 0, policy.log_operation_probabilities(theta)))
  assert images.shape == (8, 32, 32, 3) and images.dtype == np.float32
  assert labels.shape == (8,) and ((0 <= ops) & (ops < augment.NUM_OPERATIONS)).all()
  # Mean subtraction only (std None): values stay in [-mean, 255 - mean].
  assert images.min() >= -124 and images.max() <= 255 - 103.5


# ---------------------------------------------------------------------------------------------
# The persistent pipeline of a run.
# ---------------------------------------------------------------------------------------------

def test_a_fed_run_pipeline_gives_each_period_the_batches_of_its_own_log_p(train_pipeline):
  # Periods of 5 steps; each period its own θ, handed over only when the period starts, while
  # the pipeline already prefetches: every image must still be drawn with its period's θ.
  schedule = train_pipeline.schedule
  first = 1
  thetas = [tf.random.stateless_normal([augment.NUM_OPERATIONS], [p, 9]) * 3
            for p in range(schedule.num_periods)]
  feed = pipeline.SamplingFeed()
  iterator = iter(train_pipeline.run_dataset(first, 2, feed))
  try:
    for period in range(first, schedule.num_periods):
      log_probs = policy.log_operation_probabilities(thetas[period])
      feed.put(log_probs)
      start, end = schedule.period(period)
      fed = [next(iterator) for _ in range(end - start)]
      alone = list(_period(train_pipeline, period, 2, log_probs))
      assert len(fed) == len(alone)
      for got, want in zip(fed, alone):
        for a, b in zip(tf.nest.flatten(got), tf.nest.flatten(want), strict=True):
          np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(StopIteration):  # the run's last period ends the pipeline
      next(iterator)
  finally:
    feed.close()


def test_a_closed_feed_ends_a_waiting_pipeline(train_pipeline):
  feed = pipeline.SamplingFeed()
  iterator = iter(train_pipeline.run_dataset(0, 0, feed))
  feed.put(policy.log_operation_probabilities(tf.zeros([augment.NUM_OPERATIONS])))
  for _ in range(train_pipeline.schedule.period_steps):
    next(iterator)
  feed.close()  # the pipeline waits for period 1's log p: it must end, not hang
  with pytest.raises((StopIteration, tf.errors.OpError)):
    next(iterator)


def test_a_run_pipeline_without_operations_spans_the_run(train_pipeline):
  batches = list(train_pipeline.run_dataset(2, 0))
  assert len(batches) == train_pipeline.schedule.total_steps - train_pipeline.schedule.period(2)[0]
  np.testing.assert_array_equal(batches[0].images.numpy(),
                                next(iter(_period(train_pipeline, 2, 0))).images.numpy())
  assert (np.concatenate([b.ops.numpy() for b in batches]) == pipeline.NO_OPERATION).all()


def test_dataset_bytes_bounds_a_finite_dataset_and_is_infinite_when_unknown():
  examples = tf.data.Dataset.from_tensor_slices(
      (np.zeros([50, 8, 8, 3], np.uint8), np.zeros([50], np.int32)))
  batches = pipeline.eval_dataset(examples, 16, _MEAN, _STD)  # float32 images, int32 labels
  assert pipeline.dataset_bytes(batches, 16) == 4 * 16 * (8 * 8 * 3 * 4 + 4)
  assert sum(x.numpy().nbytes + y.numpy().nbytes for x, y in batches) <= 4 * 16 * (8 * 8 * 3 * 4 + 4)
  unknown_length = batches.filter(lambda x, y: True)
  assert pipeline.dataset_bytes(unknown_length, 16) == float("inf")


def test_no_pipeline_of_a_run_is_autotuned_and_one_replica_reads_it_undistributed(
    train_pipeline):
  # Destroying an autotuned iterator waits for the autotuning thread's next round (up to a
  # minute): no pipeline of a run may be autotuned, nor wrapped in a distributed dataset (which
  # adds an autotuned root) when one replica reads it.
  train = train_pipeline.run_dataset(0, 0, pipeline.SamplingFeed())
  val = pipeline.eval_dataset(tf.data.Dataset.from_tensor_slices(
      (np.zeros([4, 8, 8, 3], np.uint8), np.zeros([4], np.int32))), 2, _MEAN, _STD)
  assert not train.options().autotune.enabled and not val.options().autotune.enabled
  t = trajectory.Trajectory(0, ["/cpu:0"], lambda: models.build("resnet8", 10, (32, 32, 3)),
                            lambda: keras.optimizers.SGD(0.1), 0.0, 32)
  assert t._distribute(train) is train  # pylint: disable=protected-access


def test_a_uniform_feed_hands_the_uniform_log_p_for_each_period(train_pipeline):
  feed = pipeline.SamplingFeed.uniform(3)
  uniform = policy.log_operation_probabilities(tf.zeros([augment.NUM_OPERATIONS]))
  run = _collect(train_pipeline.run_dataset(train_pipeline.schedule.num_periods - 3, 0, feed))
  fed = [_collect(_period(train_pipeline, period, 0, uniform))
         for period in range(train_pipeline.schedule.num_periods - 3,
                             train_pipeline.schedule.num_periods)]
  for got, expected in zip(run, map(np.concatenate, zip(*fed))):
    np.testing.assert_array_equal(got, expected)
