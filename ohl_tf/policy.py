"""The augmentation policy p_θ (paper, eq. 7): the distribution, drawing and counting operations.

The policy is a distribution over the K = E² operations of a search space of E elements
(`augment.SearchSpace`; the paper's: E = 36, K = 1296), ordered pairs of elements (e1, e2), op
index k = E·e1 + e2, parameterised by θ ∈ R^K:

    p_θ(k) = sigmoid(θ_k) / Σ_i sigmoid(θ_i)                               (eq. 7)

Note that this is *not* softmax(θ): it is softmax(log sigmoid(θ)), which saturates — an op's
weight can never exceed 1, so no single op can take all the mass as quickly as under a softmax.

The functions take K and E from their arguments' shapes (E = √K), so one code serves every
space. How θ is learned (the rewards, the estimators, θ's Adam) is `ohl_tf.estimators`'s.

Everything here is a pure function of tensors; all of it works eagerly and inside `tf.function`.
Randomness is stateless: `sample_operations` and `draw_operations` take explicit seeds.
"""

import math

import tensorflow as tf

# ---------------------------------------------------------------------------------------------
# The distribution p_θ (eq. 7).
# ---------------------------------------------------------------------------------------------


def float_tensor(x, name):
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
  theta = float_tensor(theta, "theta")
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
  theta = float_tensor(theta, "theta")
  return tf.nn.softmax(tf.math.log_sigmoid(theta), axis=-1)


def entropy(probs):
  """Shannon entropy −Σ_k p_k log p_k in nats, over the last axis (0·log 0 = 0).

  Args:
    probs: float tensor [..., K], a distribution over the last axis.

  Returns:
    Tensor [...] of the same dtype; log K for the uniform distribution (7.167 for K = 1296).
  """
  probs = float_tensor(probs, "probs")
  # xlogy(0, 0) = 0, where p * log(p) would give 0 * -inf = NaN for ops with zero mass.
  return -tf.reduce_sum(tf.math.xlogy(probs, probs), axis=-1)


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
  log_probs = float_tensor(log_probs, "log_probs")
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
  probs = float_tensor(probs, "probs")
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
