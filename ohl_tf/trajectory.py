"""A trajectory: one copy w_n of the network, trained on its own devices (paper Algorithm 1).

Each trajectory owns a `tf.distribute.MirroredStrategy` over its share of the devices, its Keras
model and SGD optimizer, and per-period accumulators: the histogram c_n of the operations its
batches carried (the counts of the REINFORCE gradient), the training loss and accuracy, and the
first step whose loss was not finite.

Trajectories on distinct devices train in concurrent threads, but TensorFlow must not construct
graphs in two threads at once (tracing a `tf.data` map or a `tf.function` concurrently can kill
the process): everything that builds a graph (distributing a dataset, making its iterator,
tracing the steps) happens in `input_iterator` and `evaluation_iterator`, which the caller
runs in one thread; `train` and `evaluate` then only execute.
"""

import collections
import collections.abc
import itertools

import keras
import numpy as np
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import devices as devices_lib
from ohl_tf import policy


Evaluation = collections.namedtuple("Evaluation", ["accuracy", "top5_accuracy", "loss"])


def learning_rate_schedule(peak, total_steps, warmup_steps=0, warmup_start=0.0):
  """Cosine decay from `peak` to 0 over the run, after an optional linear warm-up."""
  if warmup_steps:
    return keras.optimizers.schedules.CosineDecay(
        warmup_start, max(total_steps - warmup_steps, 1), warmup_target=peak,
        warmup_steps=warmup_steps)
  return keras.optimizers.schedules.CosineDecay(peak, max(total_steps, 1))


class Trajectory:
  """One network w_n with its optimizer, under its own MirroredStrategy.

  Args:
    index: n, the trajectory's index.
    devices: the device names of its strategy.
    build_model: () -> uncompiled keras.Model (logits); called under the strategy's scope.
    make_optimizer: () -> keras optimizer.
    weight_decay: L2 coefficient added to the loss (coupled, like PyTorch SGD's weight_decay,
      which the paper's settings assume); applies to every trainable variable.
    batch_size: the global batch of one step (all replicas of this trajectory).
    count_operations: whether the batches carry sampled operations to count.
  """

  def __init__(self, index, devices, build_model, make_optimizer, weight_decay, batch_size,
               count_operations=True):
    self.index = index
    self.devices = tuple(devices)
    self.strategy = devices_lib.make_strategy(list(devices))
    replicas = self.strategy.num_replicas_in_sync
    if batch_size % replicas:
      raise ValueError(f"--batch_size={batch_size} is not divisible by the {replicas} replicas "
                       f"of trajectory {index} (devices {', '.join(devices)}).")
    self._batch_size = batch_size
    self._weight_decay = weight_decay
    self._count_operations = count_operations
    with self.strategy.scope():
      self.model = build_model()
      self.optimizer = make_optimizer()
      self.optimizer.build(self.model.trainable_variables)
    with tf.device(devices[0]):
      self.op_counts = tf.Variable(tf.zeros([augment.NUM_OPERATIONS], tf.int32), trainable=False)
      self.loss_sum = tf.Variable(0.0, trainable=False, dtype=tf.float64)
      self.correct = tf.Variable(0, trainable=False, dtype=tf.int64)
      self.seen = tf.Variable(0, trainable=False, dtype=tf.int64)
      self.first_bad_step = tf.Variable(-1, trainable=False, dtype=tf.int64)
    self._eval_datasets = {}
    self._train_function = None
    self._eval_function = None

  @property
  def state(self):
    """Everything the outer step copies: weights, BN statistics, optimizer slots and step."""
    return list(self.model.weights) + list(self.optimizer.variables)

  @property
  def step(self):
    return int(self.optimizer.iterations.numpy())

  def reset_period(self):
    for accumulator in (self.op_counts, self.loss_sum, self.correct, self.seen):
      accumulator.assign(tf.zeros_like(accumulator))

  def sync_replicas(self):
    """Sets every replica's non-trainable float state (BatchNorm's moving mean and variance) to
    the replicas' mean.

    Keras creates the moving statistics with aggregation "none", so under MirroredStrategy each
    replica updates its own copy from its own shard; evaluation, the outer step's copy, the
    checkpoint and the export would each read a different replica's. After every period they
    are made one (the cross-replica mean; a per-step synchronized BatchNorm would instead cost
    an all-reduce per layer and step). Eager, so safe in the training threads.
    """
    if self.strategy.num_replicas_in_sync == 1:
      return
    for variable in self.model.non_trainable_variables:
      if not variable.dtype.startswith("float"):
        continue
      replicas = variable.value.values
      mean = tf.add_n([r.read_value() for r in replicas]) / len(replicas)
      for replica in replicas:
        replica.assign(mean)

  # -------------------------------------------------------------------------------------------
  # Training.
  # -------------------------------------------------------------------------------------------

  def _replica_step(self, images, labels, ops):
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      logits = self.model(images, training=True)
      cross_entropy = keras.losses.sparse_categorical_crossentropy(labels, logits,
                                                                  from_logits=True)
      # Divided by the global batch and the replica count, because the all-reduce sums.
      loss = (tf.reduce_sum(cross_entropy) / self._batch_size + self._weight_decay *
              tf.add_n([tf.nn.l2_loss(v) for v in variables]) /
              self.strategy.num_replicas_in_sync)
    self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, tf.int32),
                                             tf.cast(labels, tf.int32)), tf.int64))
    counts = (policy.operation_histogram(ops) if self._count_operations
              else tf.zeros([augment.NUM_OPERATIONS], tf.int32))
    return tf.reduce_sum(cross_entropy), loss, correct, counts

  @tf.function
  def _train_steps(self, iterator, num_steps):
    for _ in tf.range(num_steps):
      step = tf.cast(self.optimizer.iterations, tf.int64)
      cross_entropy, loss, correct, counts = (
          self.strategy.reduce("SUM", value, axis=None)
          for value in self.strategy.run(self._replica_step, args=next(iterator)))
      self.loss_sum.assign_add(tf.cast(cross_entropy, tf.float64))
      self.correct.assign_add(correct)
      self.seen.assign_add(self._batch_size)
      self.op_counts.assign_add(counts)
      if self.first_bad_step < 0 and not tf.math.is_finite(loss):
        self.first_bad_step.assign(step)

  def input_iterator(self, dataset):
    """`dataset` distributed over the replicas, its iterator and (once per run) the traced
    training steps: the graph-building half of training. Call it from one thread at a time
    (module docstring); pass the iterator to `train`, for one period or, over a persistent
    `pipeline.TrainPipeline.run_dataset`, for every period of the run."""
    iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
    if self._train_function is None:
      self._train_function = self._train_steps.get_concrete_function(
          iterator, tf.TensorSpec([], tf.int32))
    return iterator

  def start_period(self, dataset):
    """Resets the period's accumulators and returns `input_iterator(dataset)`."""
    self.reset_period()
    return self.input_iterator(dataset)

  def train(self, iterator, num_steps):
    """Trains for `num_steps` batches of a `start_period` iterator, then syncs the replicas'
    BatchNorm statistics; returns the period's loss and accuracy."""
    self._train_function(iterator, tf.constant(num_steps, tf.int32))
    self.sync_replicas()
    seen = max(int(self.seen.numpy()), 1)
    return float(self.loss_sum.numpy()) / seen, int(self.correct.numpy()) / seen

  # -------------------------------------------------------------------------------------------
  # Evaluation.
  # -------------------------------------------------------------------------------------------

  @tf.function
  def _eval_step(self, images, labels):
    def replica(images, labels):
      logits = self.model(images, training=False)
      labels = tf.cast(labels, tf.int32)
      top1 = tf.equal(tf.argmax(logits, -1, tf.int32), labels)
      logits = tf.cast(logits, tf.float32)
      top5 = tf.math.in_top_k(labels, logits, min(5, logits.shape[-1]))
      cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
      return (tf.reduce_sum(tf.cast(top1, tf.float64)), tf.reduce_sum(tf.cast(top5, tf.float64)),
              tf.reduce_sum(tf.cast(cross_entropy, tf.float64)),
              tf.cast(tf.size(labels), tf.float64))
    return [self.strategy.reduce("SUM", v, axis=None)
            for v in self.strategy.run(replica, args=(images, labels))]

  def evaluation_iterator(self, dataset):
    """An iterator over a `pipeline.eval_dataset` distributed over the replicas, with the
    evaluation step traced for it: the graph-building half of `evaluate` (one thread at a
    time)."""
    if id(dataset) not in self._eval_datasets:
      self._eval_datasets[id(dataset)] = self.strategy.experimental_distribute_dataset(dataset)
    distributed = self._eval_datasets[id(dataset)]
    if self._eval_function is None:  # one trace: the batch dimension is unknown (None)
      self._eval_function = self._eval_step.get_concrete_function(*distributed.element_spec)
    return iter(distributed)

  def evaluate(self, dataset_or_iterator, num_batches=None):
    """Mean top-1 accuracy, top-5 accuracy and cross-entropy over a `pipeline.eval_dataset` (or
    an `evaluation_iterator` over one): all its batches, or the next `num_batches` (for an
    iterator over a repeated dataset that persists across periods)."""
    iterator = (dataset_or_iterator if isinstance(dataset_or_iterator, collections.abc.Iterator)
                else self.evaluation_iterator(dataset_or_iterator))
    totals = np.zeros(4)
    for images, labels in itertools.islice(iterator, num_batches):
      totals += [float(v) for v in self._eval_function(images, labels)]
    return Evaluation(*(totals[:3] / totals[3]))
