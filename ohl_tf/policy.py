"""The augmentation policy p_θ and its REINFORCE update (paper, eq. 7 and Algorithm 1).

The policy is a distribution over the K = E² operations of a search space of E elements
(`augment.SearchSpace`; the paper's: E = 36, K = 1296), ordered pairs of elements (e1, e2), op
index k = E·e1 + e2, parameterised by θ ∈ R^K:

    p_θ(k) = sigmoid(θ_k) / Σ_i sigmoid(θ_i)                               (eq. 7)

Note that this is *not* softmax(θ): it is softmax(log sigmoid(θ)), which saturates — an op's
weight can never exceed 1, so no single op can take all the mass as quickly as under a softmax.

Every outer step of Algorithm 1, N trajectories report validation accuracies acc_n and the
histograms c_n ∈ N^K of the operations they applied in the period, and θ takes one Adam step on

    ã = (acc − mean(acc)) / std(acc)                 (population std; ã = 0 when std = 0)
    loss(θ) = −(1/N) Σ_n ã_n Σ_k c_{n,k} log p_θ(k)

That is the paper's estimator (`reinforce`, eq. 6). Its signal is only the multinomial noise of
the trajectories' op counts around p_θ, which validation noise swamps; two estimators beyond the
paper share strength across the E elements (docs/estimators.md):

    pooled:      ĝ = A Aᵀ ĝ_reinforce          REINFORCE for the reparametrisation θ = Aφ
    element_es:  θ_n = θ + σ A ε_n, ε_n ~ N(0, I_E) in antithetic pairs; trajectory n samples
                 from p_{θ_n}, and ĝ = A Σ_n ã_n ε_n / (N σ) + (1/N) Σ_n ã_n ∇ Σ_k c_{n,k} log p_{θ_n}(k)

with A ∈ {0,1,2}^{K×E}, A[k,e] = [e1(k)=e] + [e2(k)=e] (`spread_to_operations` is A·,
`pool_to_elements` is Aᵀ·). ĝ is an ascent direction on the reward; Adam minimises −ĝ.
The functions take K and E from their arguments' shapes (E = √K), so one code serves every
space.

Everything here is a pure function of tensors, except `reinforce_step`, which updates the θ
variable it is given; all of it works eagerly and inside `tf.function`. Randomness is stateless:
`sample_operations` and `element_perturbations` take explicit seeds.
"""

import math

import keras
import tensorflow as tf

# Paper, section 4.1: θ is updated with Adam, lr 0.05, β = (0.5, 0.999).
THETA_LEARNING_RATE = 0.05
THETA_BETA_1 = 0.5
THETA_BETA_2 = 0.999
# The paper gives no epsilon; the authors' code is PyTorch, whose Adam default is 1e-8 (Keras's
# default is 1e-7). Keras adds epsilon to sqrt(v) *before* bias correction, PyTorch after, so
# Keras's 1e-8 acts like PyTorch's 1e-8/sqrt(1 − β2^t) (3.2e-7 at step 1, 1.3e-8 by step 1000):
# the steps differ by a relative ~3e-7/|g| at first, i.e. only on coordinates whose gradient is
# near zero, and the gap fades as t grows. A constant Keras epsilon cannot match both exactly.
THETA_EPSILON = 1e-8

# The gradient estimators of `reinforce_step`: the paper's eq. 6 first (the default).
ESTIMATORS = ("reinforce", "pooled", "element_es")
# What scores a trajectory: the paper's validation accuracy, or the negative validation
# cross-entropy, which keeps ranking trajectories once their accuracies tie (e.g. all at 100%).
REWARDS = ("accuracy", "loss")
# Folded into the run's seed for the element perturbations ε of `element_es` (the pipeline's
# streams are 1-4).
_PERTURBATION_STREAM = 5


# ---------------------------------------------------------------------------------------------
# The distribution p_θ (eq. 7).
# ---------------------------------------------------------------------------------------------


def _float_tensor(x, name):
  """Converts `x` to a floating tensor (integers become float32); other dtypes are kept."""
  x = tf.convert_to_tensor(x, name=name)
  if not x.dtype.is_floating:
    x = tf.cast(x, tf.float32)
  return x


def log_operation_probabilities(theta):
  """log p_θ(k) of eq. 7, computed stably.

  log p_θ(k) = log σ(θ_k) − logsumexp_i log σ(θ_i). Both terms are computed in log space, so the
  result is finite for any finite θ (σ(θ) underflows to 0 for θ ≲ −88 in float32, which would
  make the literal formula return log 0 or 0/0).

  Args:
    theta: float tensor [..., K] (K = the space's number of operations; any K ≥ 1 works).

  Returns:
    Tensor [..., K] of the same float dtype as `theta` (float32 for integer input).
  """
  theta = _float_tensor(theta, "theta")
  log_weights = tf.math.log_sigmoid(theta)
  return log_weights - tf.reduce_logsumexp(log_weights, axis=-1, keepdims=True)


def operation_probabilities(theta):
  """p_θ(k) = σ(θ_k) / Σ_i σ(θ_i) (eq. 7).

  Computed as softmax(log σ(θ)), which is the same quantity but subtracts the maximum before
  exponentiating, so it stays a proper distribution even when every σ(θ_i) underflows.

  Args:
    theta: float tensor [..., K].

  Returns:
    Tensor [..., K] of the same float dtype as `theta`, summing to 1 over the last axis.
  """
  theta = _float_tensor(theta, "theta")
  return tf.nn.softmax(tf.math.log_sigmoid(theta), axis=-1)


def entropy(probs):
  """Shannon entropy −Σ_k p_k log p_k in nats, over the last axis (0·log 0 = 0).

  Args:
    probs: float tensor [..., K], a distribution over the last axis.

  Returns:
    Tensor [...] of the same dtype; log K for the uniform distribution (7.167 for K = 1296).
  """
  probs = _float_tensor(probs, "probs")
  # xlogy(0, 0) = 0, where p * log(p) would give 0 * -inf = NaN for ops with zero mass.
  return -tf.reduce_sum(tf.math.xlogy(probs, probs), axis=-1)


# ---------------------------------------------------------------------------------------------
# The REINFORCE update (Algorithm 1).
# ---------------------------------------------------------------------------------------------


def normalized_rewards(accuracies):
  """ã = (acc − mean(acc)) / std(acc) over the N trajectories (Algorithm 1).

  The std is the population one (divides by N). When all accuracies are equal the rewards are all
  zero (no NaN): no trajectory is better than another, so the period's gradient is 0 (under
  Adam θ still moves by the momentum of earlier periods). This includes N = 1.

  Args:
    accuracies: float tensor [N], N ≥ 1, the validation accuracy of each trajectory.

  Returns:
    Tensor [N] of the same float dtype (float32 for integer input).
  """
  accuracies = _float_tensor(accuracies, "accuracies")
  if accuracies.shape.rank is not None and accuracies.shape.rank != 1:
    raise ValueError(
        f"accuracies must have shape [N]. Received: accuracies.shape={accuracies.shape}")
  if accuracies.shape[0] == 0:
    raise ValueError("accuracies must hold at least one trajectory. Received: accuracies.shape=[0]")
  centered = accuracies - tf.reduce_mean(accuracies)
  std = tf.math.reduce_std(accuracies)
  # Test equality exactly, not std == 0: the float mean of N equal values can be off by an ulp
  # (float32, 7 × 0.1), which leaves ~1e-8 residues whose own tiny std turns them into ±1 rewards.
  degenerate = tf.logical_or(tf.equal(tf.reduce_max(accuracies), tf.reduce_min(accuracies)),
                             tf.equal(std, 0.0))
  # The safe denominator keeps the unused branch of tf.where finite, so gradients stay NaN-free.
  safe_std = tf.where(degenerate, tf.ones_like(std), std)
  return tf.where(degenerate, tf.zeros_like(centered), centered / safe_std)


def _check_counts_and_theta(theta, op_counts):
  if op_counts.shape.rank is not None and op_counts.shape.rank != 2:
    raise ValueError(
        f"op_counts must have shape [N, K]. Received: op_counts.shape={op_counts.shape}")
  if not op_counts.shape[-1:].is_compatible_with(theta.shape[-1:]):
    raise ValueError("op_counts must have one column per operation of theta. Received: "
                     f"op_counts.shape={op_counts.shape}, theta.shape={theta.shape}")


def _loss_from_rewards(theta, op_counts, rewards):
  """−(1/N) Σ_n ã_n Σ_k c_{n,k} log p_θ(k), given the normalised rewards ã [N] (Σ_n ã_n = 0)."""
  log_probs = log_operation_probabilities(theta)
  op_counts = tf.cast(op_counts, log_probs.dtype)
  rewards = tf.cast(rewards, log_probs.dtype)
  # The counts are centred over trajectories. That leaves the loss unchanged, as Σ_n ã_n = 0, but
  # not its rounding: in float32 the ã sum to ~1e-7, not 0, and with raw counts that residue
  # times a whole period's counts leaks a gradient into *every* θ_k, which Adam (scale-free)
  # turns into visible steps where the true gradient is 0, i.e. on ops that all trajectories
  # applied equally often. Centred, those ops get exactly zero weight (the mean of equal integers
  # is exact in floating point).
  op_counts -= tf.reduce_mean(op_counts, axis=0, keepdims=True)
  # Σ_k (c_{n,k} − c̄_k) log p_θ(k): trajectory n's log-likelihood of its period, less the mean.
  log_likelihoods = tf.linalg.matvec(op_counts, log_probs)
  return -tf.reduce_mean(rewards * log_likelihoods)


def reinforce_loss(theta, op_counts, accuracies):
  """The REINFORCE loss of Algorithm 1, whose gradient is the outer-step update direction.

  loss(θ) = −(1/N) Σ_n ã_n Σ_k c_{n,k} log p_θ(k), with ã = normalized_rewards(accuracies).

  Its gradient has the closed form ∂loss/∂θ_j = −(1 − σ(θ_j)) (w_j − W p_θ(j)), where
  w_j = (1/N) Σ_n ã_n c_{n,j} and W = Σ_j w_j (derived in tests/policy_test.py). W = 0 when all
  trajectories applied the same number of ops, since the ã sum to zero.

  Args:
    theta: float tensor or variable [K].
    op_counts: int or float tensor [N, K], c_{n,k} = how often trajectory n applied op k.
    accuracies: float tensor [N], the validation accuracy of each trajectory.

  Returns:
    Scalar tensor of theta's dtype.
  """
  theta = _float_tensor(theta, "theta")
  op_counts = tf.convert_to_tensor(op_counts, name="op_counts")
  _check_counts_and_theta(theta, op_counts)
  accuracies = tf.cast(_float_tensor(accuracies, "accuracies"), theta.dtype)
  return _loss_from_rewards(theta, op_counts, normalized_rewards(accuracies))


def make_theta_optimizer(learning_rate=THETA_LEARNING_RATE):
  """The Adam optimizer for θ (paper, section 4.1: lr 0.05, β1 = 0.5, β2 = 0.999).

  epsilon = 1e-8 is PyTorch's default (the authors' code is PyTorch; the paper does not say).
  """
  return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=THETA_BETA_1,
                               beta_2=THETA_BETA_2, epsilon=THETA_EPSILON)


# ---------------------------------------------------------------------------------------------
# Estimators beyond the paper: element space (A, pooling) and element-level exploration.
# ---------------------------------------------------------------------------------------------


def pool_to_elements(op_values):
  """Aᵀ v: sums an op-indexed vector onto the elements, v[e] summed over ops holding e.

  (Aᵀ v)_e = Σ_k A[k,e] v_k = Σ_{e2} v[e, e2] + Σ_{e1} v[e1, e]: the row plus the column sum of
  v as an E×E matrix (an op (e, e) counts twice, as A[k,e] = 2 there).

  Args:
    op_values: float tensor [..., K], K = E² (static).

  Returns:
    Tensor [..., E] of the same dtype.
  """
  matrix = probability_matrix(op_values)
  return tf.reduce_sum(matrix, axis=-1) + tf.reduce_sum(matrix, axis=-2)


def spread_to_operations(element_values):
  """A φ: the op-indexed vector with (Aφ)_k = φ[e1(k)] + φ[e2(k)].

  Args:
    element_values: float tensor [..., E].

  Returns:
    Tensor [..., E²] of the same dtype.
  """
  phi = _float_tensor(element_values, "element_values")
  matrix = phi[..., :, tf.newaxis] + phi[..., tf.newaxis, :]
  return tf.reshape(matrix, tf.concat([tf.shape(phi)[:-1], [tf.shape(phi)[-1]**2]], 0))


def check_antithetic_pairs(num_trajectories):
  """Raises ValueError unless N is even and ≥ 2, as `element_perturbations` pairs trajectories.

  An unpaired ε_n would leave the mean of the ε away from 0, and with it a bias of the
  evolution term that does not average out across periods.
  """
  if num_trajectories < 2 or num_trajectories % 2:
    raise ValueError("--estimator=element_es pairs trajectories antithetically (ε, −ε), so "
                     "--trajectories must be even and >= 2. Received: "
                     f"--trajectories={num_trajectories}")


def element_perturbations(seed, period, num_trajectories, num_elements):
  """ε_n ~ N(0, I_E) of `element_es`, in antithetic pairs ε_{2j+1} = −ε_{2j}, statelessly.

  Pair j's draw depends only on (seed, period, j), not on N: a trajectory's perturbation is the
  same whatever runs beside it, and a resumed run replays it.

  Args:
    seed: int, the run's seed.
    period: int or scalar int tensor, the outer step whose inner loop uses them.
    num_trajectories: N, even.
    num_elements: E, the search space's number of elements.

  Returns:
    float32 tensor [N, E].

  Raises:
    ValueError: N odd or < 2 (`check_antithetic_pairs`).
  """
  check_antithetic_pairs(num_trajectories)
  base = tf.random.experimental.stateless_fold_in(
      tf.cast(tf.stack([seed, _PERTURBATION_STREAM]), tf.int64), tf.cast(period, tf.int64))
  pairs = tf.stack([
      tf.random.stateless_normal([num_elements], tf.random.experimental.stateless_fold_in(base, j))
      for j in range(num_trajectories // 2)])
  return tf.reshape(tf.stack([pairs, -pairs], axis=1), [num_trajectories, num_elements])


def perturbed_theta(theta, perturbations, sigma):
  """θ_n = θ + σ A ε_n for every trajectory n: [K], [N, E] -> [N, K]."""
  theta = _float_tensor(theta, "theta")
  return theta + sigma * tf.cast(spread_to_operations(perturbations), theta.dtype)


def score_gradient(theta, op_counts, rewards):
  """(1/N) Σ_n ã_n ∇ Σ_k c_{n,k} log p_{θ_n}(k), each term at its trajectory's own θ_n.

  Closed form: ∇_θ Σ_k c_k log p_θ(k) = (1 − σ(θ)) ⊙ (c − M p_θ), M = Σ_k c_k. With one θ for all
  trajectories this is eq. 6's ascent direction.

  Args:
    theta: float tensor [N, K] (each trajectory's point) or [K] (one for all).
    op_counts: int or float tensor [N, K].
    rewards: float tensor [N], the normalised rewards ã.

  Returns:
    Tensor [K] of theta's dtype.
  """
  theta = _float_tensor(theta, "theta")
  op_counts = tf.cast(op_counts, theta.dtype)
  totals = tf.reduce_sum(op_counts, axis=-1, keepdims=True)
  per_trajectory = (1.0 - tf.sigmoid(theta)) * (op_counts - totals *
                                                 operation_probabilities(theta))
  return tf.reduce_mean(tf.cast(rewards, theta.dtype)[:, tf.newaxis] * per_trajectory, axis=0)


def evolution_gradient(perturbations, rewards, sigma):
  """A Σ_n ã_n ε_n / (N σ): the evolution-strategies gradient of the Gaussian-smoothed reward.

  Args:
    perturbations: float tensor [N, E], the ε_n the trajectories sampled with.
    rewards: float tensor [N], ã.
    sigma: the perturbation scale σ > 0.

  Returns:
    Tensor [E²] of perturbations' dtype.
  """
  perturbations = _float_tensor(perturbations, "perturbations")
  rewards = tf.cast(rewards, perturbations.dtype)
  element_gradient = tf.linalg.matvec(perturbations, rewards, transpose_a=True)
  return spread_to_operations(element_gradient / (sigma * tf.cast(tf.shape(rewards)[0],
                                                                   perturbations.dtype)))


def ascent_direction(estimator, theta, op_counts, rewards, perturbations=None, sigma=1.0):
  """ĝ, the estimated gradient of the expected reward w.r.t. θ, for one of `ESTIMATORS`.

  reinforce: −∂loss/∂θ of eq. 6 (`reinforce_loss`, differentiated by autodiff exactly as the
  paper's update; its counts are centred, see `_loss_from_rewards`). pooled: A Aᵀ of that.
  element_es: `evolution_gradient` + `score_gradient` at each θ_n = θ + σ A ε_n.

  Args:
    estimator: one of ESTIMATORS.
    theta: float tensor or variable [K].
    op_counts: int or float tensor [N, K].
    rewards: float tensor [N], ã.
    perturbations: float [N, E], element_es's ε_n (ignored by the others).
    sigma: element_es's σ.

  Returns:
    Tensor [K] of theta's dtype.
  """
  if estimator not in ESTIMATORS:
    raise ValueError(f"--estimator must be one of {', '.join(ESTIMATORS)}. "
                     f"Received: --estimator={estimator}")
  theta = tf.convert_to_tensor(theta)
  if estimator == "element_es":
    if perturbations is None:
      raise ValueError("estimator='element_es' needs the perturbations ε the trajectories "
                       "sampled with.")
    points = perturbed_theta(theta, perturbations, sigma)
    return (tf.cast(evolution_gradient(perturbations, rewards, sigma), theta.dtype) +
            score_gradient(points, op_counts, rewards))
  with tf.GradientTape() as tape:
    tape.watch(theta)
    loss = _loss_from_rewards(theta, op_counts, rewards)
  gradient = -tape.gradient(loss, theta)
  if estimator == "pooled":
    gradient = spread_to_operations(pool_to_elements(gradient))
  return gradient


def reinforce_step(theta, optimizer, op_counts, accuracies, estimator="reinforce",
                   perturbations=None, sigma=1.0):
  """One outer update of θ (Algorithm 1): an optimizer step along an estimated gradient.

  The optimizer minimises, so it is given −ĝ (`ascent_direction`); with the default
  estimator="reinforce" that is exactly ∂reinforce_loss/∂θ, the paper's update. Works eagerly
  and inside `tf.function`: a Keras optimizer creates its slot variables on its first call,
  which tf.function allows during the first trace.

  Args:
    theta: tf.Variable [K], updated in place.
    optimizer: a Keras optimizer, normally `make_theta_optimizer()`, used only for theta.
    op_counts: int or float tensor [N, K], the ops each trajectory applied in the period.
    accuracies: float tensor [N], what each trajectory scored (accuracy, or another reward).
    estimator: one of ESTIMATORS.
    perturbations: float [N, E], the ε_n of element_es (`element_perturbations`).
    sigma: element_es's σ.

  Returns:
    A dict for logging:
      "loss": scalar, eq. 6's loss at θ *before* the step (at each θ_n under element_es);
      "normalized_rewards": [N], ã;
      "gradient_norm": scalar, ‖ĝ‖₂;
      "entropy": scalar, entropy of p_θ *after* the step, in nats.
  """
  if not isinstance(theta, tf.Variable):
    raise TypeError(f"theta must be a tf.Variable. Received: theta={type(theta).__name__}")
  op_counts = tf.convert_to_tensor(op_counts, name="op_counts")
  _check_counts_and_theta(theta, op_counts)
  accuracies = tf.cast(_float_tensor(accuracies, "accuracies"), theta.dtype)
  rewards = normalized_rewards(accuracies)
  value = theta.read_value()
  if estimator == "element_es":
    points = perturbed_theta(value, perturbations, sigma)
    loss = -tf.reduce_mean(rewards * tf.reduce_sum(
        tf.cast(op_counts, value.dtype) * log_operation_probabilities(points), axis=-1))
  else:
    loss = _loss_from_rewards(value, op_counts, rewards)
  gradient = ascent_direction(estimator, value, op_counts, rewards, perturbations, sigma)
  optimizer.apply_gradients([(-gradient, theta)])
  return {
      "loss": loss,
      "normalized_rewards": rewards,
      "gradient_norm": tf.norm(gradient),
      "entropy": entropy(operation_probabilities(theta)),
  }


# ---------------------------------------------------------------------------------------------
# Sampling and counting operations.
# ---------------------------------------------------------------------------------------------


def draw_operations(log_probs, num_samples, seed):
  """Draws `num_samples` op indices from the distribution exp(log_probs), statelessly.

  Gumbel-max: op = argmax_k (log p(k) + g_k), with g_k = −log(−log u_k) and u_k uniform from
  `seed`. Each draw follows p exactly, and two draws with the same seed from two distributions
  p, q give the same op with probability ≥ 1 − TV(p, q) in the typical case: the op changes
  only where the change of p moves the argmax. `element_es` pairs its trajectories on that
  coupling (common random numbers), so that a pair's batches differ only through ±ε.
  (tf.random.stateless_categorical inverts the CDF instead: a change of p early in the op order
  shifts every later draw.)

  Args:
    log_probs: float tensor [K], log p (−inf where p = 0: never drawn).
    num_samples: int or scalar int tensor ≥ 0.
    seed: int tensor [2].

  Returns:
    int32 tensor [num_samples] with values in [0, K).
  """
  log_probs = _float_tensor(log_probs, "log_probs")
  shape = tf.stack([num_samples, tf.shape(log_probs)[-1]])
  # minval > 0 keeps log(u) finite; float32 uniforms never reach 1.
  uniform = tf.random.stateless_uniform(shape, seed, minval=1e-20, maxval=1.0,
                                        dtype=log_probs.dtype)
  return tf.argmax(log_probs - tf.math.log(-tf.math.log(uniform)), axis=-1,
                   output_type=tf.int32)


def sample_operations(theta, num_samples, seed):
  """Draws `num_samples` independent op indices from p_θ, statelessly (`draw_operations`).

  The same (theta, num_samples, seed) gives the same ops on the same TensorFlow build and device.

  Args:
    theta: float tensor or variable [K].
    num_samples: int or scalar int tensor ≥ 0.
    seed: int tensor [2] (int32 or int64), e.g. derived from (global seed, outer step, trajectory).

  Returns:
    int32 tensor [num_samples] with values in [0, K).
  """
  return draw_operations(log_operation_probabilities(theta), num_samples, seed)


def operation_histogram(ops, num_operations):
  """c_k = number of times op k occurs in `ops`, the per-trajectory counts of Algorithm 1.

  Args:
    ops: int tensor of any shape with values in [0, num_operations).
    num_operations: length of the histogram, K of the search space.

  Returns:
    int32 tensor [num_operations].

  Raises:
    tf.errors.InvalidArgumentError: an op outside [0, num_operations) (bincount would drop it).
  """
  ops = tf.reshape(tf.convert_to_tensor(ops, name="ops"), [-1])
  message = f"ops must be in [0, {num_operations})"
  with tf.control_dependencies([
      tf.debugging.assert_greater_equal(ops, tf.cast(0, ops.dtype), message=message),
      tf.debugging.assert_less(ops, tf.cast(num_operations, ops.dtype), message=message)]):
    return tf.math.bincount(ops, minlength=num_operations, maxlength=num_operations,
                            dtype=tf.int32)


# ---------------------------------------------------------------------------------------------
# Analysis of a policy (TensorBoard, the exported policy; paper Fig. 5).
# ---------------------------------------------------------------------------------------------


def num_elements_of(num_operations):
  """E of a space of K = E² operations.

  Raises:
    ValueError: K unknown (an unknown last dimension) or not a square.
  """
  num_elements = math.isqrt(num_operations) if num_operations else 0
  if num_operations is None or num_elements**2 != num_operations or num_elements < 1:
    raise ValueError("the last dimension must be a known number of operations K = E² (E "
                     f"elements). Received: K={num_operations}")
  return num_elements


def probability_matrix(probs):
  """Arranges p over ops as a matrix: row e1 (applied first), column e2 (applied second).

  Args:
    probs: float tensor [..., K], K = E² (static).

  Returns:
    Tensor [..., E, E] with M[e1, e2] = probs[E·e1 + e2].

  Raises:
    ValueError: K unknown or not a square.
  """
  probs = _float_tensor(probs, "probs")
  num_elements = num_elements_of(probs.shape[-1])
  # k = E·e1 + e2 is row-major order over (e1, e2), so a plain reshape does it.
  return tf.reshape(probs, tf.concat([tf.shape(probs)[:-1], [num_elements, num_elements]], 0))


def element_marginals(probs):
  """Probability that an element sits at a uniformly chosen position of a sampled op.

  = 0.5·(P(e1 = e) + P(e2 = e)), i.e. half the row sums plus half the column sums of
  `probability_matrix`; sums to 1, and is 1/E each under the uniform policy (cf. Fig. 5).

  Args:
    probs: float tensor [..., K], K = E².

  Returns:
    Tensor [..., E].
  """
  matrix = probability_matrix(probs)
  return 0.5 * (tf.reduce_sum(matrix, axis=-1) + tf.reduce_sum(matrix, axis=-2))


def probability_of_pairs_with(probs, elements):
  """Total probability of the ops that use at least one of `elements` (as e1 or e2).

  Under the uniform policy this is 1 − ((E − m)/E)² for m distinct elements, e.g. 0.2099 for 4
  of the paper's 36.

  Args:
    probs: float tensor [..., K], K = E².
    elements: int list/tensor [m] of element indices in [0, E); duplicates count once.

  Returns:
    Tensor [...] of probs' dtype.
  """
  matrix = probability_matrix(probs)
  num_elements = matrix.shape[-1]
  elements = tf.reshape(tf.convert_to_tensor(elements, dtype=tf.int32, name="elements"), [-1])
  # tf.one_hot maps out-of-range indices to all-zero rows; make that an error instead.
  checks = [
      tf.debugging.assert_non_negative(elements, message="elements must be >= 0"),
      tf.debugging.assert_less(elements, num_elements,
                               message=f"elements must be < {num_elements}"),
  ]
  with tf.control_dependencies(checks):
    member = tf.reduce_max(tf.one_hot(elements, num_elements, dtype=matrix.dtype), axis=0)
  # Duplicates collapse in the max; with m = 0 elements reduce_max of an empty [0, E] gives the
  # dtype's lowest value, hence the clip to [0, 1].
  member = tf.clip_by_value(member, 0.0, 1.0)
  # An op (e1, e2) is out only when neither element is in the set.
  outside = 1.0 - member
  mask = 1.0 - outside[:, tf.newaxis] * outside[tf.newaxis, :]
  return tf.reduce_sum(matrix * mask, axis=[-2, -1])
