"""The outer loop's own state and its update (paper Algorithm 1, docs/loop.md#the-outer-step).

θ and its Adam optimizer, the outer step counter, the histories of θ and of the validation
accuracies, the wall time and the lineage (the running sum of each period's best trajectory's op
counts) live on the CPU, as plain variables beside the trajectories' mirrored ones; the run's
checkpoint holds them under `run_directory.OUTER_VARIABLES`. `update` is the outer step's
`tf.function`: θ's step by the run's estimator (`ohl_tf.estimators`; none for a fixed policy),
the lineage and the histories. Where the trajectories sample in a period (`perturbations`,
`sampling_log_probs`) follows from θ, the estimator and the policy, and so do the policy's
summaries (`summarise`).
"""

import tensorflow as tf

from ohl_tf import estimators
from ohl_tf import policy
from ohl_tf import run_directory
from ohl_tf import summaries


class OuterState:
  """θ, its optimizer, the counters and histories of one run.

  Args:
    config: the run's `run_config.Config`.
    augmentation: the run's `augmentation_policies.AugmentationPolicy`.
    estimator: the outer step's `estimators.Estimator` (`augmentation.estimator`).
    space: the run's `augment.SearchSpace`.
    num_periods: the run's outer steps (`schedule.Schedule.num_periods`).
    fixed_probabilities: the p [K] of a "file:" policy, else None.
  """

  def __init__(self, config, augmentation, estimator, space, num_periods, fixed_probabilities):
    self.config = config
    self.augmentation = augmentation
    self.estimator = estimator
    self.space = space
    self.fixed_probabilities = fixed_probabilities
    num_operations = space.num_operations
    with tf.device("/cpu:0"):  # θ is the outer loop's own plain variable, not a mirrored one
      initial = tf.fill([num_operations], config.theta_init)
      self.theta = tf.Variable(initial, name="theta")
      self.theta_optimizer = estimators.make_theta_optimizer(config.theta_lr)
      self.theta_optimizer.build([self.theta])
      self.outer_step = tf.Variable(0, dtype=tf.int64, name="outer_step")
      self.theta_history = tf.Variable(
          tf.concat([initial[tf.newaxis], tf.zeros([num_periods, num_operations])], 0),
          name="theta_history")
      self.val_history = tf.Variable(tf.zeros([num_periods, config.trajectories]),
                                     name="val_history")
      self.wall_time = tf.Variable(0.0, dtype=tf.float64, name="wall_time")
      # The running sum of each period's best trajectory's op counts: what the surviving
      # network trained on (best-of-N broadcast), which is not p_θ.
      self.lineage = tf.Variable(tf.zeros([num_operations], tf.float64), name="lineage")

  def checkpointed(self):
    """The objects of the run's checkpoint, by their `run_directory.OUTER_VARIABLES` names."""
    return dict(zip(run_directory.OUTER_VARIABLES,
                    [self.theta, self.theta_optimizer, self.outer_step, self.theta_history,
                     self.val_history, self.wall_time, self.lineage]))

  def variables(self):
    """Every variable, in a fixed order: θ, the optimizer's, the counter, the histories, the
    wall time and the lineage (what a cluster's chief sends to the other workers)."""
    return [self.theta, *self.theta_optimizer.variables, self.outer_step, self.theta_history,
            self.val_history, self.wall_time, self.lineage]

  def perturbations(self, period):
    """ε_n [N, E] the trajectories sample with in `period` (`estimators.Estimator`)."""
    return self.estimator.perturbations(
        self.config.seed, period, self.config.trajectories, self.space.num_elements,
        estimators.perturbation_groups(self.space, self.config.es_groups))

  def sampling_log_probs(self, period):
    """Per trajectory, log p of the operations it samples in `period` (at its own
    θ_n = θ + σAε_n under element_es); None when the policy draws no OHL operation."""
    learned = self.estimator.log_probabilities(self.theta.read_value(),
                                               self.perturbations(period), self.config.es_sigma)
    return self.augmentation.sampling_log_probabilities(learned, self.fixed_probabilities)

  def policy_payload(self):
    """What the run's policy.json holds, or None (`AugmentationPolicy.policy_payload`)."""
    return self.augmentation.policy_payload(self.theta, self.lineage, self.fixed_probabilities)

  def summarise(self, writer, figures):
    """Writes what the policy has to TensorBoard after the last outer step: p_θ and its
    marginals over time when θ is the policy, the lineage when it samples OHL operations
    (`ohl_tf.summaries`; `figures`: with the images, else only scalars and histograms)."""
    step = int(self.outer_step.numpy())
    if self.augmentation.has_theta:
      marginals = policy.element_marginals(policy.operation_probabilities(
          self.theta_history[:step + 1]))
      summaries.write_policy(writer, step, self.theta, marginals.numpy(), figures)
    if self.augmentation.samples_operations:
      summaries.write_lineage(writer, step, self.lineage.numpy(), figures)

  @tf.function
  def update(self, accuracies, scores, perturbations, best, counts):
    """The outer step but the copy of the best trajectory (`population.Population.make_equal`):
    θ's step on the estimated gradient, the lineage and the histories.

    Args:
      accuracies: float32 [N], validation accuracies (recorded).
      scores: float32 [N], what is rewarded (the accuracies, or minus the validation loss).
      perturbations: float32 [N, E], the ε_n the trajectories sampled with (element_es).
      best: int32 scalar, the best trajectory n*.
      counts: int32 [N, K], every trajectory's op counts.

    Returns:
      The normalised rewards ã [N].
    """
    rewards = self.estimator.step(self.theta, self.theta_optimizer, counts, scores,
                                  perturbations, self.config.es_sigma)["normalized_rewards"]
    self.lineage.assign_add(tf.cast(tf.gather(counts, best), tf.float64))
    self.val_history[self.outer_step].assign(accuracies)
    self.outer_step.assign_add(1)
    self.theta_history[self.outer_step].assign(self.theta)
    return rewards
