"""Scoring a trajectory's network on its replicas: top-1, top-5 and cross-entropy over the batches
of a `pipeline.eval_dataset` (the validation split every outer step, the test split at the end;
docs/loop.md).

As for training (`ohl_tf.trajectory`), what builds a graph (distributing a dataset, making its
iterator, tracing the step) happens in `validation_passes` and in `evaluate` given a dataset,
which the caller runs in one thread at a time; `evaluate` given batches only executes, so the
trajectories' threads can call it.
"""

import collections

import numpy as np
import tensorflow as tf

Evaluation = collections.namedtuple("Evaluation", ["accuracy", "top5_accuracy", "loss"])


class Evaluator:
  """The evaluation of one trajectory's model, split over the replicas of its strategy.

  Args:
    strategy: the trajectory's `tf.distribute.Strategy`.
    model: its Keras model (logits).
    distribute: fn(dataset) -> the dataset for `strategy.run` (`Trajectory._distribute`).
    device: where batches kept for every outer step live when one replica reads them.
    jit_compile: whether XLA compiles each replica's forward pass (the metrics stay outside).
  """

  def __init__(self, strategy, model, distribute, device, jit_compile=False):
    self._strategy = strategy
    self._model = model
    self._distribute = distribute
    self._device = device
    self._predict_fn = (tf.function(self._predict, jit_compile=True)
                        if jit_compile else self._predict)
    self._step_function = None  # traced once: the batch dimension is unknown (None)

  def _predict(self, images):
    """One replica's forward pass: float32 logits."""
    return tf.cast(self._model(images, training=False), tf.float32)

  @tf.function
  def _step(self, images, labels):
    def replica(images, labels):
      logits = self._predict_fn(images)
      labels = tf.cast(labels, tf.int32)
      top1 = tf.equal(tf.argmax(logits, -1, tf.int32), labels)
      top5 = tf.math.in_top_k(labels, logits, min(5, logits.shape[-1]))
      cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
      return (tf.reduce_sum(tf.cast(top1, tf.float64)), tf.reduce_sum(tf.cast(top5, tf.float64)),
              tf.reduce_sum(tf.cast(cross_entropy, tf.float64)),
              tf.cast(tf.size(labels), tf.float64))
    return [self._strategy.reduce("SUM", v, axis=None)
            for v in self._strategy.run(replica, args=(images, labels))]

  def _iterator(self, distributed):
    """An iterator over a distributed dataset, with the step traced for it (graph-building)."""
    if self._step_function is None:
      self._step_function = self._step.get_concrete_function(*distributed.element_spec)
    return iter(distributed)

  def validation_passes(self, dataset, cache=False):
    """fn() -> one pass over the batches of `dataset` on the replicas, for `evaluate` at every
    outer step.

    With `cache`, the batches are read once, here, and kept on the trajectory's devices (the
    validation split: no input pipeline per period), and fn returns them; otherwise the dataset
    is distributed once, here, and fn makes a new iterator of it, which builds a graph (one
    thread at a time).
    """
    distributed = self._distribute(dataset)
    if not cache:
      return lambda: self._iterator(distributed)
    batches = tuple(self._iterator(distributed))
    if self._strategy.num_replicas_in_sync == 1:  # read on the host: copied to the device
      with tf.device(self._device):
        batches = tuple(tuple(tf.identity(x) for x in batch) for batch in batches)
    return lambda: batches

  def evaluate(self, data):
    """The `Evaluation` (mean top-1 accuracy, top-5 accuracy and cross-entropy) of a
    `pipeline.eval_dataset`, or of one pass of `validation_passes`."""
    if isinstance(data, tf.data.Dataset):
      data = self._iterator(self._distribute(data))
    totals = np.zeros(4)
    for images, labels in data:
      totals += [float(v) for v in self._step_function(images, labels)]
    return Evaluation(*(totals[:3] / totals[3]))
