"""A trajectory: one copy w_n of the network, trained on its own devices (paper Algorithm 1).

Each trajectory owns a `tf.distribute.MirroredStrategy` over its share of the devices, its Keras
model and SGD optimizer, its `evaluation.Evaluator`, and per-period accumulators: the histogram
c_n of the operations its batches carried (the counts of the REINFORCE gradient), the training
loss and accuracy, and the first step whose loss was not finite. It trains on the `batch.Batch`es
of a `pipeline.TrainPipeline.run_dataset`.

Trajectories on distinct devices train in concurrent threads, but TensorFlow must not construct
graphs in two threads at once (tracing a `tf.data` map or a `tf.function` concurrently can kill
the process): everything that builds a graph (distributing a dataset, making its iterator,
tracing the steps) happens in `input_iterator` and the evaluator's `validation_passes`, which
the caller runs in one thread; `train` and `evaluate` then only execute.

Precision (`--precision`) and XLA (`--jit_compile`): the model may compute in bfloat16 or float16
(Keras mixed-precision policies: float32 variables, low-precision activations) while everything
at the trajectory's interfaces stays float32: the logits, the loss, the variables and BatchNorm
statistics the outer step copies, the checkpoint and the export. Under --jit_compile XLA compiles
each replica's forward and backward pass, the bulk of a step's work; the all-reduce and the
optimizer's update, the operation histogram and the accumulators stay outside it, and so does the
augmentation a replica runs under --augment_on=device (`finish_batch`).
"""

import keras
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import devices as devices_lib
from ohl_tf import evaluation
from ohl_tf import policy

# --precision: Keras dtype policies. The mixed ones keep float32 variables and compute in the
# lower precision; float16 needs loss scaling (its gradients underflow), bfloat16 has float32's
# exponent range and does not.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def learning_rate_schedule(peak, total_steps, warmup_steps=0, warmup_start=0.0):
  """Cosine decay from `peak` to 0 over the run, after an optional linear warm-up."""
  if warmup_steps:
    return keras.optimizers.schedules.CosineDecay(
        warmup_start, max(total_steps - warmup_steps, 1), warmup_target=peak,
        warmup_steps=warmup_steps)
  return keras.optimizers.schedules.CosineDecay(peak, max(total_steps, 1))


def build_in_precision(build, precision="float32"):
  """Returns `build()`'s model with its layers made under the Keras dtype policy `precision`.

  Keras layers read the global dtype policy when they are constructed, so the policy is set for
  the build only and the previous one restored: nothing else in the process (θ, the pipeline,
  a float32 export model) is built under it. Keras keeps the policy per thread, and models are
  built in the main thread. The builders (`models/`) make their logits layer float32 whatever
  the policy.

  Args:
    build: () -> keras.Model.
    precision: one of `PRECISIONS`.
  """
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(precision)
  try:
    return build()
  finally:
    keras.config.set_dtype_policy(previous)


def optimizer_for_precision(make, precision="float32"):
  """`make()`'s optimizer, wrapped in dynamic loss scaling under mixed_float16.

  float16's smallest normal number is 6e-5, and small gradients of the float16 activations
  would flush to zero; `keras.optimizers.LossScaleOptimizer` multiplies the loss by a scale
  (2^15 to start), divides the gradients by it, skips a step whose gradients overflow (halving
  the scale) and doubles it after 2000 good steps. Its scale and counter are optimizer variables,
  so the outer step's copy and the checkpoint carry them (`Trajectory.state`). A skipped step
  does not advance `iterations`, hence the learning-rate schedule.
  """
  optimizer = make()
  if precision == "mixed_float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


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
    search_space: the `augment.SearchSpace` of the counted operations (the histogram's length).
    precision: one of `PRECISIONS`, the Keras dtype policy the model is built under (float16
      also wraps the optimizer in loss scaling: `make_optimizer`).
    jit_compile: whether XLA compiles each replica's forward and backward pass (training) and
      forward pass (evaluation).
    finish_batch: None when the training batches arrive finished (`batch.Batch.finished`); else
      fn(`batch.Batch`) -> its finished `batch.Batch`, run in each replica's step on its own
      device, before the forward pass and outside XLA, on the replica's shard of a batch
      (`pipeline.TrainPipeline.device_augmentation`: the augmentation on the device).
  """

  def __init__(self, index, devices, build_model, make_optimizer, weight_decay, batch_size,
               count_operations=True, precision="float32", jit_compile=False,
               finish_batch=None, search_space=augment.PAPER):
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
    self._num_operations = search_space.num_operations
    self._finish_batch = finish_batch
    self.precision = precision
    with self.strategy.scope():
      self.model = build_in_precision(build_model, precision)
      self.optimizer = optimizer_for_precision(make_optimizer, precision)
      self.optimizer.build(self.model.trainable_variables)
    # XLA sees only the model's passes (see _forward_backward); the per-replica tf.functions are
    # called inside the strategy's replica functions.
    self._forward_backward_fn = (tf.function(self._forward_backward, jit_compile=True)
                                 if jit_compile else self._forward_backward)
    with tf.device(devices[0]):
      self.op_counts = tf.Variable(tf.zeros([self._num_operations], tf.int32), trainable=False)
      self.loss_sum = tf.Variable(0.0, trainable=False, dtype=tf.float64)
      self.correct = tf.Variable(0, trainable=False, dtype=tf.int64)
      self.seen = tf.Variable(0, trainable=False, dtype=tf.int64)
      self.first_bad_step = tf.Variable(-1, trainable=False, dtype=tf.int64)
    # Several replicas' batches stay on the host when the replicas are CPUs: there is nothing to
    # prefetch them to (see `_distribute`).
    on_cpus = all(tf.DeviceSpec.from_string(d).device_type == "CPU" for d in self.devices)
    self._input_options = tf.distribute.InputOptions(experimental_fetch_to_device=not on_cpus)
    self._train_function = None
    self.evaluator = evaluation.Evaluator(self.strategy, self.model, self._distribute,
                                          self.devices[0], jit_compile)

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

  def _forward_backward(self, images, labels):
    """One replica's forward and backward pass: the logits (float32), the summed cross-entropy,
    the loss and its gradients (of the loss times the loss scale under mixed_float16).

    The only part of a step XLA compiles under --jit_compile: it is where the time goes, and it
    holds neither the all-reduce nor the optimizer's update (their cross-replica logic stays in
    TensorFlow's hands), nor the histogram of the operations.
    """
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      # float32 already from the builders' logits layer; the cast makes the loss float32 for any
      # model (a softmax in float16 loses the small probabilities).
      logits = tf.cast(self.model(images, training=True), tf.float32)
      cross_entropy = keras.losses.sparse_categorical_crossentropy(labels, logits,
                                                                  from_logits=True)
      # Divided by the global batch and the replica count, because the all-reduce sums.
      loss = (tf.reduce_sum(cross_entropy) / self._batch_size + self._weight_decay *
              tf.add_n([tf.nn.l2_loss(v) for v in variables]) /
              self.strategy.num_replicas_in_sync)
      scaled_loss = self.optimizer.scale_loss(loss)  # the loss itself unless loss-scaled
    return logits, tf.reduce_sum(cross_entropy), loss, tape.gradient(scaled_loss, variables)

  def _agree_on_overflow(self, gradients):
    """Makes every replica see an overflow if any replica's scaled gradients overflowed.

    LossScaleOptimizer decides on each replica, from that replica's own gradients, whether to
    apply the step (which all-reduces them) or to skip it. When the replicas decide differently
    the step is not skipped: on two logical CPUs, one replica's NaN gradients went through the
    all-reduce into every replica's weights and the scale stayed as it was
    (tests/precision_test.py). One scalar all-reduce makes the decision common: a replica whose
    gradients are finite while another's are not gets a NaN too, and all skip the step.
    """
    if self.strategy.num_replicas_in_sync == 1:
      return gradients
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients])
    overflows = tf.distribute.get_replica_context().all_reduce(
        "SUM", 1.0 - tf.cast(finite, tf.float32))
    poison = tf.where(overflows > 0, float("nan"), 0.0)
    return [gradients[0] + tf.cast(poison, gradients[0].dtype), *gradients[1:]]

  def replica_inputs(self, shard):
    """The finished `batch.Batch` a replica trains on, from its shard of a batch: the shard
    itself, or `finish_batch`'s result. Call it in a replica context (`strategy.run`)."""
    return shard if shard.finished else self._finish_batch(shard)

  def _replica_step(self, shard):
    inputs = self.replica_inputs(shard)
    logits, cross_entropy, loss, gradients = self._forward_backward_fn(inputs.images,
                                                                       inputs.labels)
    if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
      gradients = self._agree_on_overflow(gradients)
    variables = self.model.trainable_variables
    self.optimizer.apply_gradients(zip(gradients, variables))
    correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, tf.int32),
                                             tf.cast(inputs.labels, tf.int32)), tf.int64))
    counts = (policy.operation_histogram(inputs.ops, self._num_operations)
              if self._count_operations else tf.zeros([self._num_operations], tf.int32))
    return cross_entropy, loss, correct, counts

  @tf.function
  def _train_steps(self, iterator, num_steps):
    for _ in tf.range(num_steps):
      step = tf.cast(self.optimizer.iterations, tf.int64)
      cross_entropy, loss, correct, counts = (
          self.strategy.reduce("SUM", value, axis=None)
          for value in self.strategy.run(self._replica_step, args=(next(iterator),)))
      self.loss_sum.assign_add(tf.cast(cross_entropy, tf.float64))
      self.correct.assign_add(correct)
      self.seen.assign_add(self._batch_size)
      self.op_counts.assign_add(counts)
      if self.first_bad_step < 0 and not tf.math.is_finite(loss):
        self.first_bad_step.assign(step)

  def _distribute(self, dataset):
    """`dataset` for `strategy.run`: split over the replicas, or as it is for one replica.

    One replica reads the dataset itself: a distributed dataset adds an autotuned tf.data root
    whatever the dataset's options, and destroying its iterator waits for the autotuning round
    (a TensorFlow 2.21 wait of up to a minute: 12-37 s at the end of runs here, 9 s per period
    for validation iterators). Several replicas still pay it once per iterator.
    """
    if self.strategy.num_replicas_in_sync == 1:
      return dataset
    return self.strategy.experimental_distribute_dataset(dataset, self._input_options)

  def input_iterator(self, dataset):
    """`dataset` distributed over the replicas, its iterator and (once per run) the traced
    training steps: the graph-building half of training. Call it from one thread at a time
    (module docstring); pass the iterator to `train`, for one period or, over a persistent
    `pipeline.TrainPipeline.run_dataset`, for every period of the run."""
    iterator = iter(self._distribute(dataset))
    if self._train_function is None:
      self._train_function = self._train_steps.get_concrete_function(
          iterator, tf.TensorSpec([], tf.int32))
    return iterator

  def train(self, iterator, num_steps):
    """Trains for `num_steps` batches of an `input_iterator`, then syncs the replicas'
    BatchNorm statistics; returns the period's loss and accuracy."""
    self._train_function(iterator, tf.constant(num_steps, tf.int32))
    self.sync_replicas()
    seen = max(int(self.seen.numpy()), 1)
    return float(self.loss_sum.numpy()) / seen, int(self.correct.numpy()) / seen
