"""How the outer step learns θ: the rewards, θ's Adam, and one registered `Estimator` per
--estimator (paper Algorithm 1 and eq. 6; docs/estimators.md).

Every outer step, N trajectories report what they scored (validation accuracy, or minus the
validation loss) and the histograms c_n ∈ N^K of the operations they applied in the period, and
θ takes one Adam step on

    ã = (r − mean(r)) / std(r)                      (population std; ã = 0 when std = 0)
    loss(θ) = −(1/N) Σ_n ã_n Σ_k c_{n,k} log p_θ(k)

That is the paper's estimator (`reinforce`, eq. 6). Its signal is only the multinomial noise of
the trajectories' op counts around p_θ, which validation noise swamps; two estimators beyond the
paper share strength across the E elements:

    pooled:      ĝ = A Aᵀ ĝ_reinforce          REINFORCE for the reparametrisation θ = Aφ
    element_es:  θ_n = θ + σ A ε_n, ε_n ~ N(0, I_E) in antithetic pairs; trajectory n samples
                 from p_{θ_n}, and ĝ = A Σ_n ã_n ε_n / (N σ) + (1/N) Σ_n ã_n ∇ Σ_k c_{n,k} log p_{θ_n}(k)

with A ∈ {0,1,2}^{K×E}, A[k,e] = [e1(k)=e] + [e2(k)=e] (`spread_to_operations` is A·,
`pool_to_elements` is Aᵀ·). ĝ is an ascent direction on the reward; Adam minimises −ĝ. With
--es_groups=operations, ε has one coordinate per operation, shared by its elements (ε = B ε_G).

An `Estimator` is everything the trainer does differently per estimator: which N it accepts
(`check_trajectories`), where the trajectories sample (`perturbations`, `log_probabilities`,
`random_stream`) and θ's step (`step`). A new one is a subclass and one entry of `ESTIMATORS`
(docs/extending.md). p_θ itself, drawing and counting are `ohl_tf.policy`'s.

Everything works eagerly and inside `tf.function`; randomness is stateless (explicit seeds).
"""

import keras
import tensorflow as tf

from ohl_tf import policy

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

# What scores a trajectory: the paper's validation accuracy, or the negative validation
# cross-entropy, which keeps ranking trajectories once their accuracies tie (e.g. all at 100%).
REWARDS = ("accuracy", "loss")
# What one coordinate of element_es's ε perturbs: each element, or each operation with all its
# elements (magnitudes, levels, probabilities) together (`augment.SearchSpace.operation_groups`).
ES_GROUPS = ("elements", "operations")
# Folded into the run's seed for the element perturbations ε of `element_es` (the pipeline's
# streams are 1-4).
_PERTURBATION_STREAM = 5


def make_theta_optimizer(learning_rate=THETA_LEARNING_RATE):
  """The Adam optimizer for θ (paper, section 4.1: lr 0.05, β1 = 0.5, β2 = 0.999).

  epsilon = 1e-8 is PyTorch's default (the authors' code is PyTorch; the paper does not say).
  """
  return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=THETA_BETA_1,
                               beta_2=THETA_BETA_2, epsilon=THETA_EPSILON)


# ---------------------------------------------------------------------------------------------
# The paper's objective (eq. 6).
# ---------------------------------------------------------------------------------------------


def normalized_rewards(scores):
  """ã = (r − mean(r)) / std(r) over the N trajectories (Algorithm 1).

  The std is the population one (divides by N). When all scores are equal the rewards are all
  zero (no NaN): no trajectory is better than another, so the period's gradient is 0 (under
  Adam θ still moves by the momentum of earlier periods). This includes N = 1.

  Args:
    scores: float tensor [N], N ≥ 1, what each trajectory scored (--reward).

  Returns:
    Tensor [N] of the same float dtype (float32 for integer input).

  Raises:
    ValueError: `scores` is not [N] with N ≥ 1.
  """
  scores = policy.float_tensor(scores, "scores")
  if scores.shape.rank is not None and scores.shape.rank != 1:
    raise ValueError(f"scores must have shape [N]. Received: scores.shape={scores.shape}")
  if scores.shape[0] == 0:
    raise ValueError("scores must hold at least one trajectory. Received: scores.shape=[0]")
  centered = scores - tf.reduce_mean(scores)
  std = tf.math.reduce_std(scores)
  # Test equality exactly, not std == 0: the float mean of N equal values can be off by an ulp
  # (float32, 7 × 0.1), which leaves ~1e-8 residues whose own tiny std turns them into ±1 rewards.
  degenerate = tf.logical_or(tf.equal(tf.reduce_max(scores), tf.reduce_min(scores)),
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
  log_probs = policy.log_operation_probabilities(theta)
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


def reinforce_loss(theta, op_counts, scores):
  """The REINFORCE loss of Algorithm 1, whose gradient is the outer-step update direction.

  loss(θ) = −(1/N) Σ_n ã_n Σ_k c_{n,k} log p_θ(k), with ã = normalized_rewards(scores).

  Its gradient has the closed form ∂loss/∂θ_j = −(1 − σ(θ_j)) (w_j − W p_θ(j)), where
  w_j = (1/N) Σ_n ã_n c_{n,j} and W = Σ_j w_j (derived in tests/policy_test.py). W = 0 when all
  trajectories applied the same number of ops, since the ã sum to zero.

  Args:
    theta: float tensor or variable [K].
    op_counts: int or float tensor [N, K], c_{n,k} = how often trajectory n applied op k.
    scores: float tensor [N], what each trajectory scored (e.g. its validation accuracy).

  Returns:
    Scalar tensor of theta's dtype.
  """
  theta = policy.float_tensor(theta, "theta")
  op_counts = tf.convert_to_tensor(op_counts, name="op_counts")
  _check_counts_and_theta(theta, op_counts)
  scores = tf.cast(policy.float_tensor(scores, "scores"), theta.dtype)
  return _loss_from_rewards(theta, op_counts, normalized_rewards(scores))


# ---------------------------------------------------------------------------------------------
# Element space (A, pooling) and element-level exploration.
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
  matrix = policy.probability_matrix(op_values)
  return tf.reduce_sum(matrix, axis=-1) + tf.reduce_sum(matrix, axis=-2)


def spread_to_operations(element_values):
  """A φ: the op-indexed vector with (Aφ)_k = φ[e1(k)] + φ[e2(k)].

  Args:
    element_values: float tensor [..., E].

  Returns:
    Tensor [..., E²] of the same dtype.
  """
  phi = policy.float_tensor(element_values, "element_values")
  matrix = phi[..., :, tf.newaxis] + phi[..., tf.newaxis, :]
  return tf.reshape(matrix, tf.concat([tf.shape(phi)[:-1], [tf.shape(phi)[-1]**2]], 0))


def perturbation_groups(space, es_groups):
  """The `groups` of `element_perturbations` for --es_groups in a search space: None (one
  coordinate per element) or `space.operation_groups`."""
  return space.operation_groups if es_groups == "operations" else None


def element_perturbations(seed, period, num_trajectories, num_elements, groups=None):
  """ε_n ~ N(0, I_E) of `element_es`, in antithetic pairs ε_{2j+1} = −ε_{2j}, statelessly.

  Pair j's draw depends only on (seed, period, j), not on N: a trajectory's perturbation is the
  same whatever runs beside it, and a resumed run replays it.

  With `groups`, one normal is drawn per group and every element takes its group's: ε = B ε_G
  with B ∈ {0,1}^{E×G}, so θ_n = θ + σ A B ε_G and the evolution term becomes A B Σ ã ε_G / (Nσ),
  the same estimator over G coordinates instead of E (more evidence for each). Groups 0..E−1 in
  order draw exactly the ungrouped ε.

  Args:
    seed: int, the run's seed.
    period: int or scalar int tensor, the outer step whose inner loop uses them.
    num_trajectories: N, even.
    num_elements: E, the search space's number of elements.
    groups: None (one coordinate per element), or E ints numbering each element's group from 0
      (`augment.SearchSpace.operation_groups`).

  Returns:
    float32 tensor [N, E].

  Raises:
    ValueError: N odd or < 2, or `groups` not E ints.
  """
  ESTIMATORS["element_es"].check_trajectories(num_trajectories)
  groups = tuple(range(num_elements)) if groups is None else tuple(groups)
  if len(groups) != num_elements or sorted(set(groups)) != list(range(max(groups) + 1)):
    raise ValueError(f"groups must number the {num_elements} elements' groups 0, 1, ... "
                     f"Received: {groups}")
  base = tf.random.experimental.stateless_fold_in(
      tf.cast(tf.stack([seed, _PERTURBATION_STREAM]), tf.int64), tf.cast(period, tf.int64))
  pairs = tf.stack([
      tf.random.stateless_normal([max(groups) + 1],
                                 tf.random.experimental.stateless_fold_in(base, j))
      for j in range(num_trajectories // 2)])
  pairs = tf.gather(pairs, groups, axis=1)
  return tf.reshape(tf.stack([pairs, -pairs], axis=1), [num_trajectories, num_elements])


def perturbed_theta(theta, perturbations, sigma):
  """θ_n = θ + σ A ε_n for every trajectory n: [K], [N, E] -> [N, K]."""
  theta = policy.float_tensor(theta, "theta")
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
  theta = policy.float_tensor(theta, "theta")
  op_counts = tf.cast(op_counts, theta.dtype)
  totals = tf.reduce_sum(op_counts, axis=-1, keepdims=True)
  per_trajectory = (1.0 - tf.sigmoid(theta)) * (op_counts - totals *
                                                 policy.operation_probabilities(theta))
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
  perturbations = policy.float_tensor(perturbations, "perturbations")
  rewards = tf.cast(rewards, perturbations.dtype)
  element_gradient = tf.linalg.matvec(perturbations, rewards, transpose_a=True)
  return spread_to_operations(element_gradient / (sigma * tf.cast(tf.shape(rewards)[0],
                                                                   perturbations.dtype)))


# ---------------------------------------------------------------------------------------------
# The estimators.
# ---------------------------------------------------------------------------------------------


class Estimator:
  """`reinforce`, the paper's eq. 6, and what the other estimators change.

  All trajectories sample from p_θ with their own random streams; ĝ is −∂loss/∂θ of eq. 6
  (`reinforce_loss`, differentiated by autodiff exactly as the paper's update; its counts are
  centred, see `_loss_from_rewards`).
  """
  name = "reinforce"
  help_text = "the paper's eq. 6"

  def description(self, sigma, groups=ES_GROUPS[0]):
    """What the terminal calls it (`console.format_summary`), given --es_sigma and --es_groups."""
    del sigma, groups  # only element_es has a σ and groups
    return self.name

  def check_trajectories(self, num_trajectories):
    """Raises ValueError when the estimator cannot work with N = `num_trajectories`."""
    del num_trajectories  # any N ≥ 1

  def perturbations(self, seed, period, num_trajectories, num_elements, groups=None):
    """The ε_n [N, E] the trajectories sample with in `period` (from the seed; `groups` as in
    `element_perturbations`): 0 here."""
    del seed, period, groups
    return tf.zeros([num_trajectories, num_elements])

  def log_probabilities(self, theta, perturbations, sigma):
    """Per trajectory, log p of the operations it samples: log p_θ for all here.

    Args:
      theta: float tensor [K].
      perturbations: float [N, E], this period's `perturbations`.
      sigma: --es_sigma.

    Returns:
      A list of N float tensors [K].
    """
    del sigma
    return [policy.log_operation_probabilities(theta)] * len(perturbations)

  def random_stream(self, trajectory):
    """The random streams (ops, signs, Cutout) trajectory `trajectory` draws from: its own."""
    return trajectory

  def loss(self, theta, op_counts, rewards, perturbations, sigma):
    """Eq. 6's loss at θ, given the normalised rewards (what `step` reports)."""
    del perturbations, sigma
    return _loss_from_rewards(theta, op_counts, rewards)

  def ascent_direction(self, theta, op_counts, rewards, perturbations=None, sigma=1.0):
    """ĝ, the estimated gradient of the expected reward w.r.t. θ.

    Args:
      theta: float tensor or variable [K].
      op_counts: int or float tensor [N, K].
      rewards: float tensor [N], ã.
      perturbations: float [N, E], the ε_n the trajectories sampled with (element_es).
      sigma: element_es's σ.

    Returns:
      Tensor [K] of theta's dtype.
    """
    del perturbations, sigma
    theta = tf.convert_to_tensor(theta)
    with tf.GradientTape() as tape:
      tape.watch(theta)
      loss = _loss_from_rewards(theta, op_counts, rewards)
    return -tape.gradient(loss, theta)

  def step(self, theta, optimizer, op_counts, scores, perturbations=None, sigma=1.0):
    """One outer update of θ (Algorithm 1): an optimizer step along −ĝ (`ascent_direction`).

    With reinforce that is exactly ∂reinforce_loss/∂θ, the paper's update. Works eagerly and
    inside `tf.function`: a Keras optimizer creates its slot variables on its first call,
    which tf.function allows during the first trace.

    Args:
      theta: tf.Variable [K], updated in place.
      optimizer: a Keras optimizer, normally `make_theta_optimizer()`, used only for theta.
      op_counts: int or float tensor [N, K], the ops each trajectory applied in the period.
      scores: float tensor [N], what each trajectory scored (--reward).
      perturbations: float [N, E], the ε_n of this period (`perturbations`).
      sigma: element_es's σ.

    Returns:
      A dict for logging:
        "loss": scalar, eq. 6's loss at θ *before* the step (at each θ_n under element_es);
        "normalized_rewards": [N], ã;
        "gradient_norm": scalar, ‖ĝ‖₂;
        "entropy": scalar, entropy of p_θ *after* the step, in nats.

    Raises:
      TypeError: theta is not a tf.Variable.
      ValueError: op_counts is not [N, K] for the K of theta.
    """
    if not isinstance(theta, tf.Variable):
      raise TypeError(f"theta must be a tf.Variable. Received: theta={type(theta).__name__}")
    op_counts = tf.convert_to_tensor(op_counts, name="op_counts")
    _check_counts_and_theta(theta, op_counts)
    rewards = normalized_rewards(tf.cast(policy.float_tensor(scores, "scores"), theta.dtype))
    value = theta.read_value()
    loss = self.loss(value, op_counts, rewards, perturbations, sigma)
    gradient = self.ascent_direction(value, op_counts, rewards, perturbations, sigma)
    optimizer.apply_gradients([(-gradient, theta)])
    return {
        "loss": loss,
        "normalized_rewards": rewards,
        "gradient_norm": tf.norm(gradient),
        "entropy": policy.entropy(policy.operation_probabilities(theta)),
    }


class Pooled(Estimator):
  """`pooled`: A Aᵀ of reinforce's ĝ, the REINFORCE gradient of θ = Aφ spread back; the
  trajectories sample exactly as under reinforce."""
  name = "pooled"
  help_text = "eq. 6 pooled onto the E elements and spread back"

  def ascent_direction(self, theta, op_counts, rewards, perturbations=None, sigma=1.0):
    gradient = super().ascent_direction(theta, op_counts, rewards)
    return spread_to_operations(pool_to_elements(gradient))


class ElementES(Estimator):
  """`element_es`: trajectory n samples at θ_n = θ + σAε_n, antithetic pairs sharing their
  random streams; ĝ = `evolution_gradient` + `score_gradient` at each θ_n."""
  name = "element_es"
  help_text = ("trajectories explore antithetic element-level perturbations of θ; even "
               "--trajectories")

  def description(self, sigma, groups=ES_GROUPS[0]):
    return f"{self.name} (σ={sigma:g}" + (", one ε per operation)" if groups == "operations"
                                           else ")")

  def check_trajectories(self, num_trajectories):
    """Raises ValueError unless N is even and ≥ 2: trajectories are paired antithetically.

    An unpaired ε_n would leave the mean of the ε away from 0, and with it a bias of the
    evolution term that does not average out across periods.
    """
    if num_trajectories < 2 or num_trajectories % 2:
      raise ValueError("--estimator=element_es pairs trajectories antithetically (ε, −ε), so "
                       "--trajectories must be even and >= 2. Received: "
                       f"--trajectories={num_trajectories}")

  def perturbations(self, seed, period, num_trajectories, num_elements, groups=None):
    return element_perturbations(seed, period, num_trajectories, num_elements, groups)

  def log_probabilities(self, theta, perturbations, sigma):
    return tf.unstack(policy.log_operation_probabilities(
        perturbed_theta(theta, perturbations, sigma)))

  def random_stream(self, trajectory):
    """A pair's shared streams (common random numbers): with Gumbel-max draws
    (`policy.draw_operations`) its batches then differ only where ±ε changes an image's op, so
    its reward difference measures ε, not the other draws."""
    return trajectory // 2

  def loss(self, theta, op_counts, rewards, perturbations, sigma):
    points = perturbed_theta(theta, perturbations, sigma)
    return -tf.reduce_mean(rewards * tf.reduce_sum(
        tf.cast(op_counts, theta.dtype) * policy.log_operation_probabilities(points), axis=-1))

  def ascent_direction(self, theta, op_counts, rewards, perturbations=None, sigma=1.0):
    if perturbations is None:
      raise ValueError("estimator='element_es' needs the perturbations ε the trajectories "
                       "sampled with.")
    theta = tf.convert_to_tensor(theta)
    points = perturbed_theta(theta, perturbations, sigma)
    return (tf.cast(evolution_gradient(perturbations, rewards, sigma), theta.dtype) +
            score_gradient(points, op_counts, rewards))


class Fixed(Estimator):
  """The outer step of a policy whose θ does not learn: θ stays; the trajectories sample from
  their own p unperturbed; the rewards are still normalised (for TensorBoard)."""
  name = "fixed"
  help_text = "θ does not move"

  def description(self, sigma, groups=ES_GROUPS[0]):
    """None: θ does not learn (`console.format_summary` then says the policy is fixed)."""
    del sigma, groups

  def step(self, theta, optimizer, op_counts, scores, perturbations=None, sigma=1.0):
    del theta, optimizer, op_counts, perturbations, sigma
    return {"normalized_rewards": normalized_rewards(scores)}


# --estimator: its `Estimator`, the paper's (the default) first. A new estimator is a subclass
# and one entry here.
ESTIMATORS = {estimator.name: estimator for estimator in (Estimator(), Pooled(), ElementES())}
# What a policy that does not learn θ uses, whatever --estimator says (not a --estimator value).
FIXED = Fixed()


def names():
  """The --estimator values, the paper's (the default) first."""
  return list(ESTIMATORS)


def flag_help():
  """--estimator's help text: every estimator with what it does."""
  return " | ".join(f"{e.name} ({e.help_text})" for e in ESTIMATORS.values())


def get(name):
  """The registered `Estimator` called `name`.

  Raises:
    ValueError: an unknown name (the message lists the known ones).
  """
  if name not in ESTIMATORS:
    raise ValueError(f"--estimator must be one of {', '.join(ESTIMATORS)}. "
                     f"Received: --estimator={name}")
  return ESTIMATORS[name]

