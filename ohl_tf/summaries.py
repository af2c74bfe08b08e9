"""What the OHL trainer writes to TensorBoard (`--model_dir/logs/`): the policy and the search.

Two layers: pure numpy functions that render the policy (images, a Markdown table, labels),
testable without a TensorFlow graph, and thin writers that send them to a
`tf.summary.SummaryWriter` passed in (no default writer, no global state).

Tags written by `write_policy` (once per outer step, after the θ update):
  policy/theta               histogram of θ [1296]
  policy/probabilities       image: p_θ as a 36×36 heatmap, row e1 (applied first), column e2
  policy/element_marginals   image: per-element marginal over the outer steps (paper, Fig. 5)
  policy/entropy             scalar: entropy of p_θ in nats (log 1296 = 7.167 when uniform)
  policy/normalized_entropy  scalar: entropy / log 1296 (1 when uniform)
  policy/top_operations      text: the 10 most probable operations, as a Markdown table

Tags written by `write_outer_step`, n = 0 .. N−1:
  trajectory_<n>/val_accuracy, trajectory_<n>/reward (normalised, ã of Algorithm 1),
  trajectory_<n>/train_loss, trajectory_<n>/train_accuracy,
  train/learning_rate, search/best_trajectory, search/best_val_accuracy

Colours come from `apply_colormap`, viridis sampled at nine points and interpolated (no
matplotlib): close to perceptually uniform, so equal steps in probability look like roughly
equal steps in colour, and ordered by lightness, so it still reads in greyscale.

Example:
  >>> writer = tf.summary.create_file_writer(os.path.join(model_dir, "logs"))
  >>> history.append(policy.element_marginals(policy.operation_probabilities(theta)).numpy())
  >>> write_policy(writer, step, theta, np.stack(history))
"""

import math
import operator

import numpy as np
import tensorflow as tf

from ohl_tf import policy
from ohl_tf.augment import ELEMENTS
from ohl_tf.augment import NUM_ELEMENTS
from ohl_tf.augment import NUM_OPERATIONS

# matplotlib's viridis at 0, 1/8, ..., 1 (the common nine-stop table). Interpolating linearly in
# RGB between them approximates, not reproduces, matplotlib's 256-entry table; what the images
# need is that lightness rises monotonically from end to end, which the tests check.
VIRIDIS_STOPS = np.array([
    (0x44, 0x01, 0x54), (0x47, 0x2c, 0x7a), (0x3b, 0x51, 0x8b), (0x2c, 0x71, 0x8e),
    (0x21, 0x91, 0x8c), (0x27, 0xad, 0x81), (0x5c, 0xc8, 0x63), (0xaa, 0xdc, 0x32),
    (0xfd, 0xe7, 0x25),
], np.uint8)

# The marginals image maps [0, MARGINAL_SCALE_MAX] onto the colormap, the same at every step, so
# that a colour means the same probability in every column. The uniform 1/36 sits a third of the
# way up (blue); an element that doubles its share (2/36) is green, 3/36 or more is yellow
# (clipped), 0 is dark purple.
MARGINAL_SCALE_MAX = 3.0 / NUM_ELEMENTS

GRID_COLOUR = np.array([255, 255, 255], np.uint8)
# Grid lines take one pixel of a cell, so they are only drawn when a cell has room to spare.
_MIN_CELL_FOR_GRID = 4

# First element index of each family after the first (ShearX 0-2, ShearY 3-5, ..., Invert 35):
# where the name changes.
FAMILY_BOUNDARIES = tuple(e for e in range(1, NUM_ELEMENTS)
                          if ELEMENTS[e].name != ELEMENTS[e - 1].name)

TOP_OPERATIONS = 10


# ---------------------------------------------------------------------------------------------
# Pure functions: numpy in, numpy out.
# ---------------------------------------------------------------------------------------------


def _finite_array(x, name, rank):
  """np.asarray(x) as float64 (also for eager tensors), checked for rank and finiteness."""
  array = np.asarray(x, dtype=np.float64)
  if array.ndim != rank:
    raise ValueError(f"{name} must have rank {rank}. Received: {name}.shape={array.shape}")
  if not np.all(np.isfinite(array)):
    # No colour or rank is right for NaN/inf; a diverged θ should be reported by the trainer's
    # NaN check, not drawn as if it were a policy.
    raise ValueError(f"{name} must be finite. Received: {np.sum(~np.isfinite(array))} "
                     "NaN or infinite values")
  return array


def _check_cell(cell):
  cell = operator.index(cell)
  if cell < 1:
    raise ValueError(f"cell must be >= 1 pixel. Received: cell={cell}")
  return cell


def apply_colormap(values):
  """Maps values in [0, 1] to viridis colours; values outside are clipped to the ends.

  Args:
    values: float array of any shape.

  Returns:
    uint8 array [..., 3]: 0 → VIRIDIS_STOPS[0] (dark purple), 1 → VIRIDIS_STOPS[-1] (yellow),
    0.5 → VIRIDIS_STOPS[4] exactly.
  """
  positions = np.clip(np.asarray(values, np.float64), 0.0, 1.0) * (len(VIRIDIS_STOPS) - 1)
  # The stop below each value, capped one short of the last so that 1.0 interpolates to the last
  # stop with weight 1 instead of indexing past the table.
  lower = np.minimum(np.floor(positions).astype(np.int64), len(VIRIDIS_STOPS) - 2)
  weight = (positions - lower)[..., np.newaxis]
  stops = VIRIDIS_STOPS.astype(np.float64)
  colours = (1.0 - weight) * stops[lower] + weight * stops[lower + 1]
  return np.rint(colours).astype(np.uint8)


def _draw_family_lines(image, cell, rows=True, columns=True):
  """Overwrites the first pixel row/column of each family after the first with GRID_COLOUR."""
  if cell < _MIN_CELL_FOR_GRID:
    return image
  for boundary in FAMILY_BOUNDARIES:
    if rows:
      image[boundary * cell, :] = GRID_COLOUR
    if columns:
      image[:, boundary * cell] = GRID_COLOUR
  return image


def heatmap_image(matrix, cell=8, grid=True):
  """p_θ as a 36×36 heatmap: block (e1, e2) shows M[e1, e2], row e1 applied first.

  Colours span the matrix's own range (min → dark purple, max → yellow), so the pattern shows at
  every stage of training, but not the absolute scale: that is in the policy/top_operations text
  and the entropy scalars. A constant matrix (the uniform policy at θ = 0) is drawn in the middle
  colour.

  Args:
    matrix: float array [36, 36], e.g. `policy.probability_matrix(probs)`; must be finite.
    cell: side of each block in pixels, ≥ 1.
    grid: draw one-pixel white lines between element families (ShearX | ShearY | ... | Invert),
      over the first pixel row and column of each family's blocks; only when cell ≥ 4.

  Returns:
    uint8 array [36·cell, 36·cell, 3].

  Raises:
    ValueError: wrong shape, non-finite values or cell < 1.
  """
  matrix = _finite_array(matrix, "matrix", rank=2)
  if matrix.shape != (NUM_ELEMENTS, NUM_ELEMENTS):
    raise ValueError(f"matrix must have shape [{NUM_ELEMENTS}, {NUM_ELEMENTS}]. "
                     f"Received: matrix.shape={matrix.shape}")
  cell = _check_cell(cell)
  low, high = matrix.min(), matrix.max()
  # high > low, not high - low > 0: differences that underflow still count as a range.
  scaled = (matrix - low) / (high - low) if high > low else np.full_like(matrix, 0.5)
  image = np.repeat(np.repeat(apply_colormap(scaled), cell, axis=0), cell, axis=1)
  return _draw_family_lines(image, cell) if grid else image


def marginals_image(history, cell=8, grid=True):
  """Per-element marginal probability over the outer steps, like the paper's Fig. 5.

  Row e (top to bottom: ShearX(0.1) ... Invert) and column t (left to right: the first step
  recorded ... the latest) show history[t, e] on the fixed scale [0, MARGINAL_SCALE_MAX = 3/36]:
  the uniform 1/36 is the same blue in every column, and values above 3/36 are drawn as 3/36.

  Args:
    history: float array [T, 36], T ≥ 1: row t is `policy.element_marginals(p_θ)` after outer
      step t; must be finite.
    cell: height of an element's row and width of a step's column, in pixels, ≥ 1.
    grid: draw one-pixel white lines between element families (only when cell ≥ 4).

  Returns:
    uint8 array [36·cell, T·cell, 3].

  Raises:
    ValueError: wrong shape, T = 0, non-finite values or cell < 1.
  """
  history = _finite_array(history, "history", rank=2)
  if history.shape[1] != NUM_ELEMENTS or history.shape[0] == 0:
    raise ValueError(f"history must have shape [T, {NUM_ELEMENTS}] with T >= 1. "
                     f"Received: history.shape={history.shape}")
  cell = _check_cell(cell)
  colours = apply_colormap(history.T / MARGINAL_SCALE_MAX)  # [36, T, 3]: elements are rows.
  image = np.repeat(np.repeat(colours, cell, axis=0), cell, axis=1)
  return _draw_family_lines(image, cell, columns=False) if grid else image


def element_label(e):
  """An element's name and Table 1 magnitude: "ShearX(0.1)", "Rotate(10)", "AutoContrast".

  Args:
    e: int in [0, 36).

  Raises:
    ValueError: e outside [0, 36) (a negative index would otherwise silently wrap).
  """
  e = operator.index(e)
  if not 0 <= e < NUM_ELEMENTS:
    raise ValueError(f"e must be in [0, {NUM_ELEMENTS}). Received: e={e}")
  element = ELEMENTS[e]
  if element.magnitude is None:
    return element.name
  return f"{element.name}({element.magnitude:g})"


def top_operations_markdown(probs, k=TOP_OPERATIONS):
  """The k most probable operations as a Markdown table (TensorBoard's text plugin renders it).

  Columns: rank (from 1), op index k = 36·e1 + e2, first element e1, second element e2 (applied
  as e2(e1(image))), p_θ(op) and its ratio to the uniform 1/1296. Equal probabilities are ranked
  by op index, so the table is deterministic (all ties at θ = 0).

  Args:
    probs: float array [1296], p_θ; must be finite.
    k: number of rows, ≥ 1; more than 1296 gives all 1296.

  Returns:
    str, a header and k rows, lines separated by "\\n".
  """
  probs = _finite_array(probs, "probs", rank=1)
  if probs.shape[0] != NUM_OPERATIONS:
    raise ValueError(f"probs must have shape [{NUM_OPERATIONS}]. "
                     f"Received: probs.shape={probs.shape}")
  k = operator.index(k)
  if k < 1:
    raise ValueError(f"k must be >= 1. Received: k={k}")
  # A stable sort of −p keeps equal probabilities in op-index order.
  order = np.argsort(-probs, kind="stable")[:k]
  lines = ["| rank | op | first element | second element | probability | × uniform |",
           "|---:|---:|---|---|---:|---:|"]
  for rank, op in enumerate(order, start=1):
    e1, e2 = divmod(int(op), NUM_ELEMENTS)
    lines.append(f"| {rank} | {op} | {element_label(e1)} | {element_label(e2)} | "
                 f"{probs[op]:.6f} | {probs[op] * NUM_OPERATIONS:.2f} |")
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Writers: eager only (they render with numpy); each flushes before returning.
# ---------------------------------------------------------------------------------------------


def _check_eager(function_name):
  if not tf.executing_eagerly():
    raise RuntimeError(f"{function_name} renders images with numpy and must run eagerly: call it "
                       "after the tf.function outer step returns, not inside it.")


def write_policy(writer, step, theta, marginal_history):
  """Writes the policy's state after an outer step (tags policy/*, see the module docstring).

  Args:
    writer: a `tf.summary.SummaryWriter`, e.g. `tf.summary.create_file_writer(model_dir/logs)`.
    step: int, the outer step (x axis of every tag).
    theta: float array, tensor or variable [1296].
    marginal_history: float array [T, 36], the element marginals of every outer step recorded so
      far *including this one* (the trainer keeps it; its last row should be
      `policy.element_marginals(policy.operation_probabilities(theta))`).

  Raises:
    ValueError: wrong shapes or non-finite values (nothing is written then).
    RuntimeError: called inside a tf.function.
  """
  _check_eager("write_policy")
  theta = tf.convert_to_tensor(theta)
  if theta.shape != [NUM_OPERATIONS]:
    raise ValueError(f"theta must have shape [{NUM_OPERATIONS}]. "
                     f"Received: theta.shape={theta.shape}")
  # In float64, so that the uniform policy reads log 1296 and 1.0 exactly (float32 gives
  # 0.9999997), and a flat stretch of the entropy curve is not float32 noise.
  probs = policy.operation_probabilities(tf.cast(theta, tf.float64))
  entropy = float(policy.entropy(probs))
  # Rendered before anything is written, so a bad input leaves no half-written step.
  heatmap = heatmap_image(policy.probability_matrix(probs).numpy())
  marginals = marginals_image(marginal_history)
  # The heatmap's colours are relative to its own range: give the range in numbers here.
  table = top_operations_markdown(probs.numpy())
  low, high = float(tf.reduce_min(probs)), float(tf.reduce_max(probs))
  text = (f"{table}\n\nHeatmap range (policy/probabilities): min {low:.6f} "
          f"({low * NUM_OPERATIONS:.2f} × uniform), max {high:.6f} "
          f"({high * NUM_OPERATIONS:.2f} × uniform).")
  with writer.as_default():
    tf.summary.histogram("policy/theta", theta, step=step)
    tf.summary.image("policy/probabilities", heatmap[np.newaxis], step=step,
                     description="p_θ(e1, e2): row e1 (applied first), column e2; colours from "
                     "the min (dark purple) to the max (yellow) of this step.")
    tf.summary.image("policy/element_marginals", marginals[np.newaxis], step=step,
                     description="Element marginals (rows, ShearX(0.1) at the top) over outer "
                     "steps (columns); scale 0 (purple) .. 1/36 (blue) .. 3/36+ (yellow).")
    tf.summary.scalar("policy/entropy", entropy, step=step)
    tf.summary.scalar("policy/normalized_entropy", entropy / math.log(NUM_OPERATIONS), step=step)
    tf.summary.text("policy/top_operations", text, step=step)
  # Leaving as_default() flushes already (TF 2.21, eager); flushing here as well keeps "on disk
  # when the function returns" true whatever that context manager does in later versions.
  writer.flush()


def _vector(x, name):
  array = np.asarray(x)
  if array.ndim != 1:
    raise ValueError(f"{name} must have shape [N]. Received: {name}.shape={array.shape}")
  return array


def write_outer_step(writer, step, *, val_accuracies, normalized_rewards, train_loss,
                     train_accuracy, learning_rate, best_trajectory):
  """Writes the per-trajectory results of an outer step and the search's choice.

  Args:
    writer: a `tf.summary.SummaryWriter`.
    step: int, the outer step.
    val_accuracies: float array or tensor [N], top-1 accuracy of each trajectory on the held-out
      validation split.
    normalized_rewards: float [N], ã of Algorithm 1.
    train_loss: float [N], each trajectory's mean training loss over the period.
    train_accuracy: float [N], each trajectory's training accuracy over the period.
    learning_rate: float scalar, the network's learning rate at the end of the period.
    best_trajectory: int in [0, N), the trajectory whose weights were copied to all the others.

  Raises:
    ValueError: arrays of different lengths, not rank 1, or best_trajectory out of range.
    RuntimeError: called inside a tf.function.
  """
  _check_eager("write_outer_step")
  per_trajectory = {
      "val_accuracy": _vector(val_accuracies, "val_accuracies"),
      "reward": _vector(normalized_rewards, "normalized_rewards"),
      "train_loss": _vector(train_loss, "train_loss"),
      "train_accuracy": _vector(train_accuracy, "train_accuracy"),
  }
  lengths = {name: len(values) for name, values in per_trajectory.items()}
  num_trajectories = lengths["val_accuracy"]
  if num_trajectories == 0 or len(set(lengths.values())) != 1:
    raise ValueError("val_accuracies, normalized_rewards, train_loss and train_accuracy must "
                     f"all have the same length N >= 1. Received lengths: {lengths}")
  best_trajectory = operator.index(np.asarray(best_trajectory).item())
  if not 0 <= best_trajectory < num_trajectories:
    raise ValueError(f"best_trajectory must be in [0, {num_trajectories}). "
                     f"Received: best_trajectory={best_trajectory}")
  learning_rate = np.asarray(learning_rate)
  if learning_rate.size != 1:
    raise ValueError(f"learning_rate must be a scalar. Received: shape={learning_rate.shape}")
  with writer.as_default():
    for n in range(num_trajectories):
      for name, values in per_trajectory.items():
        tf.summary.scalar(f"trajectory_{n}/{name}", values[n], step=step)
    tf.summary.scalar("train/learning_rate", learning_rate.item(), step=step)
    tf.summary.scalar("search/best_trajectory", best_trajectory, step=step)
    tf.summary.scalar("search/best_val_accuracy", per_trajectory["val_accuracy"][best_trajectory],
                      step=step)
  writer.flush()
