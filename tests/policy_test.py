"""Tests for ohl_tf.policy: p_θ (eq. 7), its REINFORCE gradient and update (Algorithm 1)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import estimators
from ohl_tf import policy

K = augment.NUM_OPERATIONS
E = augment.NUM_ELEMENTS
E1 = np.arange(K) // E  # Element applied first by each op.
E2 = np.arange(K) % E  # Element applied second.


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _reference_probabilities(theta):
  """Eq. 7 literally, in float64 numpy."""
  weights = _sigmoid(np.asarray(theta, np.float64))
  return weights / weights.sum()


def _random_problem(seed, n=6, dtype=np.float64):
  """Random θ [K], op counts [N, K] with unequal totals per trajectory, accuracies [N]."""
  rng = np.random.default_rng(seed)
  theta = rng.normal(0.0, 2.0, size=K).astype(dtype)
  # Different Poisson rates per trajectory make the totals C_n differ, so the W·p_j term of the
  # gradient (which vanishes for equal totals) is exercised too.
  rates = rng.uniform(0.5, 3.0, size=(n, 1))
  counts = rng.poisson(rates, size=(n, K)).astype(np.int32)
  accuracies = rng.uniform(0.6, 0.9, size=n).astype(dtype)
  return theta, counts, accuracies


# ---------------------------------------------------------------------------------------------
# p_θ (eq. 7).
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_probabilities_sum_to_one_and_keep_dtype(dtype):
  theta = tf.constant(np.random.default_rng(0).normal(0, 3, size=K), dtype)
  probs = policy.operation_probabilities(theta)
  log_probs = policy.log_operation_probabilities(theta)
  assert probs.dtype == dtype and log_probs.dtype == dtype
  assert probs.shape == [K] and log_probs.shape == [K]
  np.testing.assert_allclose(tf.reduce_sum(probs).numpy(), 1.0,
                             rtol=1e-6 if dtype == tf.float32 else 1e-12)


def test_probabilities_are_uniform_at_zero():
  probs = policy.operation_probabilities(tf.zeros([K]))
  np.testing.assert_allclose(probs.numpy(), np.full(K, 1.0 / K), rtol=1e-6)


def test_probabilities_match_eq7_and_differ_from_softmax():
  theta = np.random.default_rng(1).normal(0, 2, size=K)
  probs = policy.operation_probabilities(tf.constant(theta, tf.float64)).numpy()
  np.testing.assert_allclose(probs, _reference_probabilities(theta), rtol=1e-12)
  softmax = tf.nn.softmax(tf.constant(theta)).numpy()
  # Sigmoid saturates: the largest op gets far less mass than under a softmax of the same θ.
  assert np.max(np.abs(probs - softmax)) > 1e-3
  assert probs.max() < 0.5 * softmax.max()


@pytest.mark.parametrize("start", [0.0, -12.0])
def test_how_far_one_operation_can_grow_depends_on_where_theta_starts(start):
  # From θ = start·1, raising one θ_k by 5 multiplies its odds against the others by
  # σ(start + 5)/σ(start) (eq. 7): under 2 at the paper's 0, about e^5, a softmax's, at -12.
  theta = np.full(K, start)
  theta[7] += 5.0
  probs = policy.operation_probabilities(tf.constant(theta, tf.float64)).numpy()
  sigmoid = lambda x: 1 / (1 + np.exp(-x))
  np.testing.assert_allclose(probs[7] / probs[0], sigmoid(start + 5) / sigmoid(start), rtol=1e-12)
  if start == 0:
    assert probs[7] / probs[0] < 2
  else:
    np.testing.assert_allclose(probs[7] / probs[0], np.exp(5.0), rtol=1e-3)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_log_probabilities_match_log_of_probabilities(dtype):
  theta = np.random.default_rng(2).normal(0, 3, size=K)
  log_probs = policy.log_operation_probabilities(tf.constant(theta, dtype)).numpy()
  probs = policy.operation_probabilities(tf.constant(theta, dtype)).numpy()
  rtol = 1e-5 if dtype == tf.float32 else 1e-12
  np.testing.assert_allclose(log_probs, np.log(probs), rtol=rtol)
  np.testing.assert_allclose(log_probs, np.log(_reference_probabilities(theta)), rtol=rtol)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_log_probabilities_finite_for_large_theta(dtype):
  theta = np.random.default_rng(3).choice([-50.0, 50.0], size=K)
  log_probs = policy.log_operation_probabilities(tf.constant(theta, dtype)).numpy()
  assert np.all(np.isfinite(log_probs))
  # σ(50) = 1 and σ(−50) = e^-50 to float precision; compare with that in float64.
  n_up = np.sum(theta > 0)
  expected = np.where(theta > 0, 0.0, -50.0) - np.log(n_up + (K - n_up) * np.exp(-50.0))
  np.testing.assert_allclose(log_probs, expected, rtol=1e-6)


def test_probabilities_stay_a_distribution_when_every_sigmoid_underflows():
  # σ(−200) underflows to 0 in float32, so the literal σ/Σσ would be 0/0 here.
  theta = tf.fill([K], tf.constant(-200.0))
  probs = policy.operation_probabilities(theta).numpy()
  np.testing.assert_allclose(probs, np.full(K, 1.0 / K), rtol=1e-5)
  one_hot = tf.tensor_scatter_nd_update(tf.fill([K], -50.0), [[5]], [50.0])
  assert policy.operation_probabilities(one_hot).numpy()[5] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# Normalised rewards.
# ---------------------------------------------------------------------------------------------


def test_normalized_rewards_have_zero_mean_and_unit_population_variance():
  accuracies = np.random.default_rng(4).uniform(0.5, 0.9, size=8)
  rewards = estimators.normalized_rewards(tf.constant(accuracies)).numpy()
  np.testing.assert_allclose(rewards.mean(), 0.0, atol=1e-12)
  np.testing.assert_allclose(rewards.var(), 1.0, rtol=1e-12)  # np.var is the population one.
  np.testing.assert_allclose(rewards, (accuracies - accuracies.mean()) / accuracies.std(),
                             rtol=1e-12)
  np.testing.assert_allclose(estimators.normalized_rewards([0.2, 0.4]).numpy(), [-1.0, 1.0],
                             rtol=1e-6)


# In float32 the mean of these equal values is off by one ulp, so a plain "std == 0" test would
# turn the ~1e-8 residues into rewards of exactly ±1 and move θ with no signal at all.
@pytest.mark.parametrize("value,n", [(0.1, 7), (0.9123, 3), (0.7, 8), (0.0, 5)])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_normalized_rewards_are_zero_when_all_equal(value, n, dtype):
  rewards = estimators.normalized_rewards(tf.fill([n], tf.constant(value, dtype)))
  assert rewards.dtype == dtype
  np.testing.assert_array_equal(rewards.numpy(), np.zeros(n))


def test_normalized_rewards_single_trajectory_is_zero():
  np.testing.assert_array_equal(estimators.normalized_rewards([0.73]).numpy(), [0.0])


def test_normalized_rewards_reject_bad_shapes():
  with pytest.raises(ValueError, match="at least one trajectory"):
    estimators.normalized_rewards(tf.zeros([0]))
  with pytest.raises(ValueError, match=r"shape \[N\]"):
    estimators.normalized_rewards(tf.zeros([2, 3]))


# ---------------------------------------------------------------------------------------------
# The REINFORCE loss and its gradient.
# ---------------------------------------------------------------------------------------------


def _closed_form_gradient(theta, counts, accuracies):
  """∂loss/∂θ in float64 numpy.

  Derivation. With σ_j = σ(θ_j) and S = Σ_i σ_i, log p_k = log σ_k − log S, and σ' = σ(1 − σ):
    ∂ log σ_k / ∂θ_j = δ_jk σ'_j / σ_j = δ_jk (1 − σ_j)
    ∂ log S / ∂θ_j   = σ'_j / S      = σ_j (1 − σ_j) / S
  so ∂ log p_k/∂θ_j = δ_jk (1 − σ_j) − σ_j (1 − σ_j)/S = (1 − σ_j)(δ_jk − p_j).
  (A softmax would give δ_jk − p_j: eq. 7 adds the factor (1 − σ_j).)
  The loss is −Σ_k w_k log p_k with w_k = (1/N) Σ_n ã_n c_{n,k}; with W = Σ_k w_k,
    ∂loss/∂θ_j = −Σ_k w_k (1 − σ_j)(δ_jk − p_j) = −(1 − σ_j)(w_j − W p_j).
  """
  accuracies = np.asarray(accuracies, np.float64)
  rewards = (accuracies - accuracies.mean()) / accuracies.std()
  w = rewards @ np.asarray(counts, np.float64) / len(accuracies)
  sig = _sigmoid(np.asarray(theta, np.float64))
  return -(1.0 - sig) * (w - w.sum() * _reference_probabilities(theta))


def _tape_gradient(theta, counts, accuracies):
  theta = tf.Variable(theta)
  with tf.GradientTape() as tape:
    loss = estimators.reinforce_loss(theta, counts, accuracies)
  return tape.gradient(loss, theta).numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_closed_form_float64(seed):
  theta, counts, accuracies = _random_problem(seed)
  expected = _closed_form_gradient(theta, counts, accuracies)
  # Guard that the W·p_j term is really exercised (|W| is not ~0).
  rewards = (accuracies - accuracies.mean()) / accuracies.std()
  assert abs(rewards @ counts.sum(axis=1)) > 10.0
  np.testing.assert_allclose(_tape_gradient(theta, counts, accuracies), expected,
                             rtol=1e-9, atol=1e-12 * np.abs(expected).max())


def test_gradient_matches_closed_form_float32():
  theta, counts, accuracies = _random_problem(2, dtype=np.float32)
  expected = _closed_form_gradient(theta, counts, accuracies)
  np.testing.assert_allclose(_tape_gradient(theta, counts, accuracies), expected,
                             rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_gradient_matches_central_finite_differences():
  theta, counts, accuracies = _random_problem(3)
  loss_fn = tf.function(lambda t: estimators.reinforce_loss(t, counts, accuracies))
  gradient = _tape_gradient(theta, counts, accuracies)
  rng = np.random.default_rng(3)
  h = 1e-5
  # 48 single coordinates (all 1296 would only cost time) and 4 random directions (which touch
  # every coordinate at once).
  directions = [np.eye(1, K, j)[0] for j in rng.choice(K, 48, replace=False)]
  directions += [d / np.linalg.norm(d) for d in rng.normal(size=(4, K))]
  for d in directions:
    numeric = (loss_fn(tf.constant(theta + h * d)) - loss_fn(tf.constant(theta - h * d))) / (2 * h)
    np.testing.assert_allclose(numeric.numpy(), gradient @ d, rtol=1e-6,
                               atol=1e-6 * np.abs(gradient).max())


def test_loss_matches_definition_and_vanishes_without_signal():
  theta, counts, accuracies = _random_problem(4)
  rewards = (accuracies - accuracies.mean()) / accuracies.std()
  expected = -np.mean(rewards * (counts @ np.log(_reference_probabilities(theta))))
  np.testing.assert_allclose(estimators.reinforce_loss(theta, counts, accuracies).numpy(), expected,
                             rtol=1e-10)
  # Equal accuracies: no trajectory is better, so neither loss nor gradient may move θ.
  flat = np.full_like(accuracies, 0.1)
  assert estimators.reinforce_loss(theta, counts, flat).numpy() == 0.0
  np.testing.assert_array_equal(_tape_gradient(theta, counts, flat), np.zeros(K))


def test_loss_rejects_mismatched_counts():
  with pytest.raises(ValueError, match="one column per operation"):
    estimators.reinforce_loss(tf.zeros([K]), tf.zeros([2, K - 1]), [0.1, 0.2])
  with pytest.raises(ValueError, match=r"shape \[N, K\]"):
    estimators.reinforce_loss(tf.zeros([K]), tf.zeros([K]), [0.1])


# ---------------------------------------------------------------------------------------------
# The θ optimizer and one outer step.
# ---------------------------------------------------------------------------------------------


def _two_trajectories(op_a=3 * E + 5, op_b=35 * E + 35):
  """Trajectory 0 applied op_a 20 times, trajectory 1 op_b 20 times; both 100 others alike."""
  counts = np.zeros([2, K], np.int32)
  counts[:, 100:200] = 1
  counts[0, op_a] += 20
  counts[1, op_b] += 20
  return counts, np.array([0.9, 0.8], np.float32), op_a, op_b


def test_reinforce_step_in_tf_function_favours_the_better_trajectory():
  counts, accuracies, op_a, op_b = _two_trajectories()
  theta = tf.Variable(tf.zeros([K]))
  theta_before = theta.numpy()
  optimizer = estimators.make_theta_optimizer()
  step = tf.function(estimators.get("reinforce").step)
  expected_loss = estimators.reinforce_loss(theta, counts, accuracies).numpy()
  out = step(theta, optimizer, tf.constant(counts), tf.constant(accuracies))
  theta_after = theta.numpy()
  # Adam's first step is ±lr on every coordinate with a non-zero gradient.
  assert theta_after[op_a] == pytest.approx(0.05, rel=1e-4)
  assert theta_after[op_b] == pytest.approx(-0.05, rel=1e-4)
  # Equal totals ⇒ W = 0 ⇒ the ops both trajectories applied equally get no gradient.
  others = np.setdiff1d(np.arange(K), [op_a, op_b])
  np.testing.assert_array_equal(theta_after[others], theta_before[others])
  probs = policy.operation_probabilities(theta).numpy()
  assert probs[op_a] > 1.0 / K > probs[op_b]
  np.testing.assert_allclose(out["normalized_rewards"].numpy(), [1.0, -1.0], rtol=1e-6)
  np.testing.assert_allclose(out["loss"].numpy(), expected_loss, rtol=1e-6)
  np.testing.assert_allclose(out["entropy"].numpy(), policy.entropy(probs).numpy(), rtol=1e-6)
  assert out["gradient_norm"].numpy() > 0
  # A second call reuses the trace and the optimizer slots: θ keeps moving the same way.
  step(theta, optimizer, tf.constant(counts), tf.constant(accuracies))
  assert theta.numpy()[op_a] > theta_after[op_a] and theta.numpy()[op_b] < theta_after[op_b]
  assert int(optimizer.iterations.numpy()) == 2


def test_reinforce_step_rejects_plain_tensor():
  counts, accuracies, _, _ = _two_trajectories()
  with pytest.raises(TypeError, match="tf.Variable"):
    estimators.get("reinforce").step(tf.zeros([K]), estimators.make_theta_optimizer(), counts, accuracies)


def test_reinforce_steps_follow_adam_with_the_paper_hyperparameters():
  """Three outer steps against numpy Adam (lr 0.05, β (0.5, 0.999), ε 1e-8).

  Two references: Keras's formulation (ε added to sqrt(v) before bias correction), which must
  match to rounding, and PyTorch's (the authors'), which differs only through that ε placement.
  """
  rng = np.random.default_rng(5)
  theta = tf.Variable(tf.zeros([K], tf.float64))
  optimizer = estimators.make_theta_optimizer()
  lr, b1, b2, eps = 0.05, 0.5, 0.999, 1e-8
  keras_ref, torch_ref = np.zeros(K), np.zeros(K)
  keras_mv, torch_mv = [np.zeros(K), np.zeros(K)], [np.zeros(K), np.zeros(K)]
  for t in range(1, 4):
    counts = rng.poisson(2.0, size=(4, K)).astype(np.int32)
    accuracies = rng.uniform(0.5, 0.9, size=4)
    for ref, mv in ((keras_ref, keras_mv), (torch_ref, torch_mv)):
      grad = _closed_form_gradient(ref, counts, accuracies)
      mv[0] = b1 * mv[0] + (1 - b1) * grad
      mv[1] = b2 * mv[1] + (1 - b2) * grad**2
    # Keras keeps lr and β2 in float32 in the step (0.999 → 0.99900001): model that too.
    lr32, b2_power = float(np.float32(lr)), float(np.float32(b2))**t
    keras_ref -= (lr32 * np.sqrt(1 - b2_power) / (1 - b1**t) * keras_mv[0] /
                  (np.sqrt(keras_mv[1]) + eps))
    torch_ref -= (lr / (1 - b1**t) * torch_mv[0] /
                  (np.sqrt(torch_mv[1] / (1 - b2**t)) + eps))
    estimators.get("reinforce").step(theta, optimizer, counts, accuracies)
    np.testing.assert_allclose(theta.numpy(), keras_ref, rtol=1e-9, atol=1e-12)
    # The ε placement shows only on coordinates with |gradient| ≲ 1e-4 (2% of a step at most
    # here); a wrong β or learning rate would be off by a sizeable fraction of lr = 0.05.
    np.testing.assert_allclose(theta.numpy(), torch_ref, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Sampling and counting.
# ---------------------------------------------------------------------------------------------


def _skewed_theta():
  # A permuted ramp: σ spans 0.018..0.982, so p spans 55x and every expected count of 200k
  # draws is ≥ 5 (what the chi-square approximation needs).
  return tf.constant(np.random.default_rng(6).permutation(np.linspace(-4.0, 4.0, K)), tf.float32)


def test_sample_operations_is_deterministic_per_seed():
  theta = _skewed_theta()
  a = policy.sample_operations(theta, 1000, tf.constant([1, 2]))
  b = policy.sample_operations(theta, 1000, tf.constant([1, 2]))
  c = policy.sample_operations(theta, 1000, tf.constant([1, 3]))
  assert a.dtype == tf.int32 and a.shape == [1000]
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert np.mean(a.numpy() != c.numpy()) > 0.9
  assert a.numpy().min() >= 0 and a.numpy().max() < K


def _chi_square_critical_value(df, z=3.2905):
  """Wilson–Hilferty approximation of the chi-square quantile at normal quantile z (p = 5e-4)."""
  a = 2.0 / (9.0 * df)
  return df * (1.0 - a + z * math.sqrt(a))**3


def test_sampled_frequencies_match_p_theta():
  theta = _skewed_theta()
  num_samples = 200_000
  ops = policy.sample_operations(theta, num_samples, tf.constant([7, 11], tf.int64))
  counts = policy.operation_histogram(ops, K)
  assert counts.dtype == tf.int32 and counts.shape == [K]
  assert int(tf.reduce_sum(counts)) == num_samples
  counts = counts.numpy().astype(np.float64)
  expected = num_samples * _reference_probabilities(theta.numpy())
  assert expected.min() >= 5.0
  chi2 = np.sum((counts - expected)**2 / expected)
  threshold = _chi_square_critical_value(K - 1)
  assert chi2 < threshold, (chi2, threshold)
  # The statistic can fail: the same counts are far off a softmax(θ) policy.
  softmax_expected = num_samples * tf.nn.softmax(tf.cast(theta, tf.float64)).numpy()
  assert np.sum((counts - softmax_expected)**2 / softmax_expected) > 10 * threshold


def test_sample_operations_in_tf_data_matches_eager():
  theta = _skewed_theta()
  seeds = tf.constant([[3, i] for i in range(4)], tf.int64)
  dataset = tf.data.Dataset.from_tensor_slices(seeds).map(
      lambda seed: policy.sample_operations(theta, 16, seed))
  for seed, ops in zip(seeds, dataset):
    np.testing.assert_array_equal(ops.numpy(), policy.sample_operations(theta, 16, seed).numpy())


def test_operation_histogram_counts():
  ops = tf.constant([[0, 5, 5], [K - 1, 5, 0]], tf.int32)
  counts = policy.operation_histogram(ops, K).numpy()
  expected = np.zeros(K, np.int32)
  expected[[0, 5, K - 1]] = [2, 3, 1]
  np.testing.assert_array_equal(counts, expected)
  np.testing.assert_array_equal(policy.operation_histogram(tf.zeros([0], tf.int32), K).numpy(),
                                np.zeros(K))


@pytest.mark.parametrize("bad_op", [K, -1])
def test_operation_histogram_rejects_out_of_range_ops(bad_op):
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"ops must be in \[0, 1296\)"):
    policy.operation_histogram(tf.constant([0, bad_op]), K)


# ---------------------------------------------------------------------------------------------
# Bandits: the whole update, run for 50 outer steps, must learn what the reward rewards.
# ---------------------------------------------------------------------------------------------


def _run_bandit(reward_mask, reward_sign, steps=50, trajectories=8, draws=256, noise=0.002):
  """Algorithm 1 with a synthetic reward instead of training.

  Each step, every trajectory draws `draws` ops from p_θ; its "accuracy" is
  0.5 + reward_sign · (fraction of its draws in reward_mask) + N(0, noise²).

  Returns:
    (p_θ after the last step as numpy [K], entropy after the last step).
  """
  theta = tf.Variable(tf.zeros([K]))
  optimizer = estimators.make_theta_optimizer()
  mask = tf.constant(reward_mask, tf.float32)

  @tf.function
  def outer_step(step):
    counts, accuracies = [], []
    for n in range(trajectories):
      ops = policy.sample_operations(theta, draws, tf.stack([step, n]))
      c = policy.operation_histogram(ops, K)
      fraction = tf.reduce_sum(tf.cast(c, tf.float32) * mask) / draws
      eps = tf.random.stateless_normal([], tf.stack([step, 1000 + n]))
      counts.append(c)
      accuracies.append(0.5 + reward_sign * fraction + noise * eps)
    return estimators.get("reinforce").step(theta, optimizer, tf.stack(counts), tf.stack(accuracies))

  for step in range(steps):
    out = outer_step(tf.constant(step))
  return policy.operation_probabilities(theta).numpy(), float(out["entropy"])


# The effect is modest by construction: σ caps an op's weight at 1 (twice its initial 0.5), and
# Adam moves each θ_k by at most ~lr = 0.05 per step, with 256 draws spread over 1296 ops. With
# these seeds the good share reaches ~1.4x and the harmful share ~0.66x; a reward that ignores
# the ops stays within ~5% of uniform, which the thresholds below sit well clear of.
GOOD_OPS = np.isin(np.arange(K), np.random.default_rng(8).choice(K, 36, replace=False))
HARMFUL_OPS = (E1 == 35) | (E2 == 35)  # Every op that applies Invert.


def test_bandit_raises_probability_of_good_ops():
  probs, final_entropy = _run_bandit(GOOD_OPS, +1.0)
  initial_share = GOOD_OPS.mean()
  assert probs[GOOD_OPS].sum() > 1.25 * initial_share
  # Not discriminating by itself: the null control's θ diffuses too and its entropy also ends
  # ~0.015 below log K. The share assertions are what tie the change to the reward.
  assert final_entropy < math.log(K) - 0.01
  # Control: with a reward blind to the ops, the same seeds leave the good share near 1/36.
  null_probs, _ = _run_bandit(GOOD_OPS, 0.0)
  assert abs(null_probs[GOOD_OPS].sum() / initial_share - 1.0) < 0.12


def test_bandit_lowers_probability_of_harmful_element():
  uniform_share = 1.0 - (35.0 / 36.0)**2
  assert HARMFUL_OPS.mean() == pytest.approx(uniform_share)
  probs, _ = _run_bandit(HARMFUL_OPS, -1.0)
  harmful_share = float(policy.probability_of_pairs_with(probs, [35]))
  assert harmful_share == pytest.approx(probs[HARMFUL_OPS].sum(), rel=1e-5)
  assert harmful_share < 0.85 * uniform_share
  assert policy.element_marginals(probs).numpy()[35] < 1.0 / E
  null_probs, _ = _run_bandit(HARMFUL_OPS, 0.0)
  assert abs(null_probs[HARMFUL_OPS].sum() / uniform_share - 1.0) < 0.1


# ---------------------------------------------------------------------------------------------
# Analysis helpers.
# ---------------------------------------------------------------------------------------------


def test_probability_matrix_puts_e1_on_rows():
  probs = np.zeros(K, np.float32)
  probs[E * 3 + 5] = 1.0
  matrix = policy.probability_matrix(probs).numpy()
  assert matrix.shape == (E, E)
  assert matrix[3, 5] == 1.0 and matrix.sum() == 1.0
  batched = policy.probability_matrix(tf.stack([probs, probs[::-1]]))
  assert batched.shape == [2, E, E]
  np.testing.assert_array_equal(batched[1].numpy()[E1, E2], probs[::-1])


def test_element_marginals():
  probs = np.zeros(K)
  probs[E * 3 + 5] = 0.5  # (3, 5): 3 and 5 each fill half of this op's positions.
  probs[E * 7 + 7] = 0.5  # (7, 7): 7 fills both positions.
  marginals = policy.element_marginals(probs).numpy()
  expected = np.zeros(E)
  expected[[3, 5, 7]] = [0.25, 0.25, 0.5]
  np.testing.assert_allclose(marginals, expected)
  random_probs = policy.operation_probabilities(_skewed_theta())
  marginals = policy.element_marginals(random_probs).numpy()
  assert marginals.shape == (E,)
  assert marginals.sum() == pytest.approx(1.0, rel=1e-5)
  np.testing.assert_allclose(policy.element_marginals(tf.fill([K], 1.0 / K)).numpy(),
                             np.full(E, 1.0 / E), rtol=1e-5)


def test_probability_of_pairs_with():
  uniform = tf.fill([K], tf.constant(1.0 / K, tf.float64))
  four = policy.probability_of_pairs_with(uniform, [0, 9, 21, 35]).numpy()
  assert four == pytest.approx(1.0 - (32.0 / 36.0)**2, rel=1e-9)
  assert four == pytest.approx(0.2099, abs=1e-4)
  # Duplicates count once; no elements means no ops.
  assert policy.probability_of_pairs_with(uniform, [35, 35]).numpy() == pytest.approx(
      1.0 - (35.0 / 36.0)**2, rel=1e-9)
  assert policy.probability_of_pairs_with(uniform, tf.zeros([0], tf.int32)).numpy() == 0.0
  # Against brute force on a skewed policy.
  probs = policy.operation_probabilities(_skewed_theta()).numpy()
  elements = [2, 17, 30]
  brute = probs[np.isin(E1, elements) | np.isin(E2, elements)].sum()
  assert policy.probability_of_pairs_with(probs, elements).numpy() == pytest.approx(brute, rel=1e-5)
  with pytest.raises(tf.errors.InvalidArgumentError, match="elements must be <"):
    policy.probability_of_pairs_with(probs, [36])


def test_entropy():
  assert policy.entropy(tf.fill([K], 1.0 / K)).numpy() == pytest.approx(math.log(K), rel=1e-6)
  one_hot = np.zeros(K)
  one_hot[17] = 1.0
  assert policy.entropy(one_hot).numpy() == 0.0  # 0·log 0 counts as 0, not NaN.
  probs = policy.operation_probabilities(_skewed_theta()).numpy().astype(np.float64)
  assert policy.entropy(probs).numpy() == pytest.approx(-np.sum(probs * np.log(probs)), rel=1e-9)
