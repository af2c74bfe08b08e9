"""Tests for the estimators beyond the paper (ohl_tf.policy: pooled, element_es).

Each gradient is checked three ways: against a closed form written here in numpy from its
equation, against autodiff of the objective it claims to differentiate, and, in expectation,
against the gradient it estimates (Monte-Carlo mean within a few standard errors).
"""

import numpy as np
import pytest
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import estimators
from ohl_tf import policy
from ohl_tf import run_config

K = augment.NUM_OPERATIONS
E = augment.NUM_ELEMENTS


def _incidence():
  """A [K, E], A[k, e] = [e1(k) = e] + [e2(k) = e], built element by element."""
  a = np.zeros([K, E])
  for k in range(K):
    a[k, k // E] += 1
    a[k, k % E] += 1
  return a


A = _incidence()


def _problem(seed, n=4):
  rng = np.random.default_rng(seed)
  theta = rng.normal(0.0, 1.5, size=K)
  counts = rng.poisson(rng.uniform(0.5, 3.0, size=(n, 1)), size=(n, K)).astype(np.int32)
  rewards = estimators.normalized_rewards(rng.uniform(0.5, 0.9, size=n)).numpy()
  return theta, counts, rewards


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _score(theta, counts):
  """∇_θ Σ_k c_k log p_θ(k) in numpy: (1 − σ(θ)) ⊙ (c − M p_θ)."""
  weights = _sigmoid(theta)
  return (1.0 - weights) * (counts - counts.sum() * weights / weights.sum())


# ---------------------------------------------------------------------------------------------
# Element space: A and Aᵀ.
# ---------------------------------------------------------------------------------------------

def test_pool_and_spread_are_the_incidence_matrix_and_its_transpose():
  rng = np.random.default_rng(0)
  v, phi = rng.normal(size=[3, K]), rng.normal(size=[3, E])
  np.testing.assert_allclose(estimators.pool_to_elements(v), v @ A, rtol=1e-12)
  np.testing.assert_allclose(estimators.spread_to_operations(phi), phi @ A.T, rtol=1e-12)
  assert A.sum(axis=0).tolist() == [2 * E] * E  # each element sits in 71 ops, once twice


# ---------------------------------------------------------------------------------------------
# reinforce and pooled.
# ---------------------------------------------------------------------------------------------

def test_reinforce_direction_is_minus_the_paper_gradient():
  theta, counts, rewards = _problem(1)
  expected = np.mean([r * _score(theta, c) for r, c in zip(rewards, counts)], axis=0)
  np.testing.assert_allclose(estimators.get("reinforce").ascent_direction(theta, counts, rewards),
                             expected, rtol=1e-8, atol=1e-12)


def test_pooled_is_the_reinforce_gradient_of_the_element_reparametrisation():
  """θ = Aφ: ∂/∂φ of eq. 6's objective is Aᵀĝ, and A of that is the pooled direction."""
  rng = np.random.default_rng(2)
  phi = tf.constant(rng.normal(0.0, 0.5, size=E))
  _, counts, rewards = _problem(2)
  theta = estimators.spread_to_operations(phi)
  # Autodiff of eq. 6's objective through the reparametrisation, with the estimator's ã.
  with tf.GradientTape() as tape:
    tape.watch(phi)
    log_p = policy.log_operation_probabilities(estimators.spread_to_operations(phi))
    objective = tf.reduce_mean(rewards * tf.linalg.matvec(tf.cast(counts, tf.float64), log_p))
  expected = A @ tape.gradient(objective, phi).numpy()
  pooled = estimators.get("pooled").ascent_direction(theta, counts, rewards)
  np.testing.assert_allclose(pooled, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())
  reinforce = estimators.get("reinforce").ascent_direction(theta, counts, rewards).numpy()
  np.testing.assert_allclose(pooled, A @ A.T @ reinforce, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# element_es.
# ---------------------------------------------------------------------------------------------

def test_perturbations_are_antithetic_pairs_fixed_by_seed_period_and_pair():
  eps = estimators.element_perturbations(7, 3, 6, E).numpy()
  assert eps.shape == (6, E) and eps.dtype == np.float32
  np.testing.assert_array_equal(eps[1::2], -eps[0::2])
  # Pair j does not depend on how many trajectories run beside it; periods and seeds differ.
  np.testing.assert_array_equal(estimators.element_perturbations(7, 3, 2, E).numpy(), eps[:2])
  np.testing.assert_array_equal(estimators.element_perturbations(7, 3, 6, E).numpy(), eps)
  assert not np.allclose(estimators.element_perturbations(7, 4, 6, E).numpy(), eps)
  assert not np.allclose(estimators.element_perturbations(8, 3, 6, E).numpy(), eps)
  assert len({tuple(row) for row in eps[0::2]}) == 3


def test_perturbations_are_standard_normal():
  eps = np.concatenate([estimators.element_perturbations(0, t, 2, E).numpy()[0] for t in range(400)])
  # 14,400 draws: mean within 4 standard errors of 0, variance within 4 of 1.
  assert abs(eps.mean()) < 4 / np.sqrt(eps.size)
  assert abs(eps.var() - 1.0) < 4 * np.sqrt(2.0 / eps.size)


def test_grouped_perturbations_share_one_normal_per_group():
  groups = augment.AUTOAUGMENT_CIFAR10.operation_groups
  e = len(groups)
  eps = estimators.element_perturbations(7, 3, 6, e, groups).numpy()
  assert eps.shape == (6, e)
  np.testing.assert_array_equal(eps[1::2], -eps[0::2])
  for group in set(groups):  # one value per group and pair; pairs and groups differ
    members = eps[:, [i for i, g in enumerate(groups) if g == group]]
    np.testing.assert_array_equal(members, members[:, :1] * np.ones_like(members))
  assert len(np.unique(eps[0])) == max(groups) + 1
  # Each element's group numbered in order: exactly the ungrouped draws (old runs replay theirs).
  np.testing.assert_array_equal(
      estimators.element_perturbations(7, 3, 6, E, tuple(range(E))).numpy(),
      estimators.element_perturbations(7, 3, 6, E).numpy())
  # ... which are the draws of the code before --es_groups, pinned by value.
  np.testing.assert_array_equal(
      estimators.element_perturbations(0, 0, 2, 36).numpy()[0, :4],
      np.float32([-1.129284143447876, 0.7433117032051086, -0.10954858362674713,
                  0.0445035919547081]))
  np.testing.assert_array_equal(
      estimators.element_perturbations(7, 3, 8, 42).numpy()[6, -3:],
      np.float32([0.1377434879541397, -1.4675425291061401, 1.6366478204727173]))
  with pytest.raises(ValueError, match="groups must number the 3 elements' groups"):
    estimators.element_perturbations(7, 3, 2, 3, (0, 2, 2))


def test_grouped_evolution_term_is_the_estimator_over_the_groups():
  """With ε = B ε_G the evolution term is A B Σ ã ε_G / (Nσ): one coordinate per operation."""
  groups = augment.PAPER.operation_groups
  b = np.eye(max(groups) + 1)[list(groups)]  # B ∈ {0,1}^{E×G}
  eps = estimators.element_perturbations(4, 1, 4, E, groups).numpy().astype(np.float64)
  eps_g = eps[:, [groups.index(g) for g in range(b.shape[1])]]
  rewards = np.array([0.3, -1.1, 1.4, -0.6])
  np.testing.assert_allclose(estimators.evolution_gradient(eps, rewards, 0.9),
                             A @ b @ (eps_g.T @ rewards) / (4 * 0.9), rtol=1e-10)


@pytest.mark.parametrize("n", [0, 1, 3, 7])
def test_an_odd_number_of_trajectories_is_refused(n):
  with pytest.raises(ValueError, match=f"--trajectories must be even and >= 2. Received: "
                     f"--trajectories={n}"):
    estimators.element_perturbations(0, 0, n, E)
  with pytest.raises(ValueError, match="--trajectories must be even"):
    run_config.Config(estimator="element_es", trajectories=max(n, 1) if n % 2 else 3)


def test_config_checks_the_estimator_and_its_settings():
  with pytest.raises(ValueError, match="--estimator must be one of reinforce, pooled, "
                     "element_es. Received: --estimator=natural"):
    run_config.Config(estimator="natural")
  with pytest.raises(ValueError, match="--es_sigma must be > 0"):
    run_config.Config(estimator="element_es", es_sigma=0.0)
  with pytest.raises(ValueError, match=r"--theta_lr must be > 0. Received: --theta_lr=-0.05"):
    run_config.Config(theta_lr=-0.05)
  # A fixed policy does not explore, so its N need not be even.
  run_config.Config(estimator="element_es", policy="uniform", trajectories=3)
  with pytest.raises(ValueError, match="--es_groups must be one of elements, operations. "
                     "Received: --es_groups=families"):
    run_config.Config(estimator="element_es", es_groups="families")
  for refused in ({"estimator": "reinforce"}, {"estimator": "element_es", "policy": "uniform"}):
    with pytest.raises(ValueError, match="--es_groups applies only to --estimator=element_es"
                       r".*Received: --es_groups=operations, --estimator=[a-z_]+, --policy=[a-z]+$"):
      run_config.Config(es_groups="operations", **refused)
  run_config.Config(estimator="element_es", es_groups="operations")


def test_element_es_direction_matches_its_closed_form():
  theta, counts, rewards = _problem(3)
  eps = estimators.element_perturbations(1, 0, 4, E).numpy().astype(np.float64)
  sigma = 0.7
  points = theta + sigma * eps @ A.T
  expected = (A @ (eps.T @ rewards) / (4 * sigma) +
              np.mean([r * _score(p, c) for r, p, c in zip(rewards, points, counts)], axis=0))
  actual = estimators.get("element_es").ascent_direction(theta, counts, rewards, eps, sigma)
  np.testing.assert_allclose(actual, expected, rtol=1e-8, atol=1e-12)


def test_score_term_is_autodiff_of_each_trajectorys_log_likelihood_at_its_own_point():
  theta, counts, rewards = _problem(4)
  eps = tf.cast(estimators.element_perturbations(2, 0, 4, E), tf.float64)
  theta = tf.constant(theta)
  with tf.GradientTape() as tape:
    tape.watch(theta)
    log_p = policy.log_operation_probabilities(estimators.perturbed_theta(theta, eps, 1.3))
    objective = tf.reduce_mean(rewards * tf.reduce_sum(tf.cast(counts, tf.float64) * log_p, -1))
  np.testing.assert_allclose(
      estimators.score_gradient(estimators.perturbed_theta(theta, eps, 1.3), counts, rewards),
      tape.gradient(objective, theta), rtol=1e-8, atol=1e-12)


def test_evolution_term_is_unbiased_for_the_smoothed_gradient_monte_carlo():
  """f(θ) = −½‖θ − t‖²: E[A Σ_n f(θ_n) ε_n / (Nσ)] = −A Aᵀ (θ − t) exactly (smoothing a
  quadratic adds a constant), so the Monte-Carlo mean must sit within its standard error."""
  rng = np.random.default_rng(5)
  theta, target = rng.normal(size=K) * 0.1, rng.normal(size=K) * 0.1
  sigma, n, periods = 0.5, 8, 3000
  eps = tf.cast(tf.stack([estimators.element_perturbations(0, t, n, E) for t in range(periods)]),
                tf.float64)  # [T, N, E]
  points = theta + sigma * tf.einsum("tne,ke->tnk", eps, A)
  raw_rewards = -0.5 * tf.reduce_sum((points - target)**2, axis=-1)  # [T, N], not normalised
  estimates = tf.stack([estimators.evolution_gradient(eps[t], raw_rewards[t], sigma)
                        for t in range(periods)]).numpy()
  # Compare in element space (the estimates lie in A's column space): Aᵀ·/(2E) recovers φ.
  element_estimates = estimates @ A / (2 * E)
  expected = -(A @ A.T @ (theta - target)) @ A / (2 * E)
  error = element_estimates.mean(0) - expected
  standard_error = element_estimates.std(0) / np.sqrt(periods)
  assert np.all(np.abs(error) < 4.5 * standard_error), np.max(np.abs(error) / standard_error)
  # And the antithetic pairs cancel the constant: the same rewards plus 1000 change nothing.
  np.testing.assert_allclose(estimators.evolution_gradient(eps[0], raw_rewards[0] + 1000.0, sigma),
                             estimates[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("estimator", ["reinforce", "pooled"])
def test_score_estimators_are_unbiased_on_a_linear_bandit_monte_carlo(estimator):
  """Reward r = w·c/M with c ~ Multinomial(M, p_θ): E[r] = w·p_θ. Eq. 6's loss centres the
  counts over the N trajectories, i.e. subtracts the batch mean r̄ as a baseline, which includes
  r_n itself, so with raw rewards E[ĝ] = (N−1)/N ∇_θ(w·p_θ) (A Aᵀ of that for pooled); with the
  normalised ã (Σ ã = 0) the centring changes nothing."""
  rng = np.random.default_rng(6)
  theta = rng.normal(0.0, 1.0, size=K)
  w = np.where(A[:, 35] > 0, -1.0, 0.0) + rng.normal(0, 0.1, size=K)  # Invert's ops are bad
  draws, n, periods = 400, 8, 1500
  p = policy.operation_probabilities(theta).numpy()
  counts = rng.multinomial(draws, p / p.sum(), size=(periods, n)).astype(np.float64)
  raw_rewards = counts @ w / draws
  direction = tf.function(lambda c, r: estimators.get(estimator).ascent_direction(theta, c, r))
  estimates = np.stack([direction(counts[t], raw_rewards[t]).numpy() for t in range(periods)])
  theta_t = tf.constant(theta)
  with tf.GradientTape() as tape:
    tape.watch(theta_t)
    expected_reward = tf.reduce_sum(w * policy.operation_probabilities(theta_t))
  expected = (n - 1) / n * tape.gradient(expected_reward, theta_t).numpy()
  if estimator == "pooled":
    expected = A @ A.T @ expected
  # Project onto a few fixed directions (1296 coordinates each have tiny signal) and compare.
  directions = np.concatenate([A.T, rng.normal(size=(4, K))])
  error = (estimates @ directions.T).mean(0) - expected @ directions.T
  standard_error = (estimates @ directions.T).std(0) / np.sqrt(periods)
  assert np.all(np.abs(error) < 4.5 * standard_error), np.max(np.abs(error) / standard_error)


# ---------------------------------------------------------------------------------------------
# A bandit where an element's ops are harmful: all three estimators learn it, at unequal speed.
# ---------------------------------------------------------------------------------------------

HARMFUL = (A[:, 35] > 0) | (A[:, 21] > 0) | (A[:, 22] > 0) | (A[:, 23] > 0)  # Invert, Solarize


def _run_bandit(estimator, steps=40, trajectories=4, draws=512, beta=1.0, noise=0.01, seed=0):
  """Algorithm 1 with a surrogate reward: 0.5 − β·(harmful share of a trajectory's draws) +
  N(0, noise²), the trajectories sampling at θ (at θ_n under element_es)."""
  theta = tf.Variable(tf.zeros([K]))
  optimizer = estimators.make_theta_optimizer()
  harmful = tf.constant(HARMFUL, tf.float32)

  @tf.function
  def outer_step(step):
    eps = estimators.get(estimator).perturbations(seed, step, trajectories, E)
    points = estimators.perturbed_theta(theta, eps, 1.0)
    counts, rewards = [], []
    for n in range(trajectories):
      ops = policy.sample_operations(points[n], draws, tf.stack([seed, step * 100 + n]))
      c = policy.operation_histogram(ops, K)
      share = tf.reduce_sum(tf.cast(c, tf.float32) * harmful) / draws
      counts.append(c)
      rewards.append(0.5 - beta * share +
                     noise * tf.random.stateless_normal([], tf.stack([seed, 10**6 + step * 100 + n])))
    estimators.get(estimator).step(theta, optimizer, tf.stack(counts), tf.stack(rewards), eps)

  for step in range(steps):
    outer_step(tf.constant(step))
  return float(tf.reduce_sum(policy.operation_probabilities(theta) * HARMFUL)) / HARMFUL.mean()


def test_bandit_every_estimator_lowers_the_harmful_mass_those_sharing_strength_most():
  ratios = {estimator: _run_bandit(estimator) for estimator in estimators.names()}
  assert ratios["reinforce"] < 0.97, ratios
  # Measured with these seeds: reinforce 0.94, pooled 0.65, element_es 0.69.
  assert ratios["pooled"] < 0.8 and ratios["element_es"] < 0.8, ratios
