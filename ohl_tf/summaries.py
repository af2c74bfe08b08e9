"""What the OHL trainer writes to TensorBoard (`--model_dir/logs/`): the policy and the search.

Two layers: pure functions that render the policy (labelled figures as RGB arrays, a Markdown
table, labels), testable without a TensorFlow graph, and thin writers that send them to a
`tf.summary.SummaryWriter` passed in (no default writer, no global state). `ohl_tf.report`
draws the same figures from a checkpoint into PNG files.

Tags written by `write_policy` (once per outer step, after the θ update; the images only when
asked, which the trainer does at an interval, --figure_interval_secs), for a search space of E
elements and K = E² operations (the paper's: 36, 1296; the space is the one of θ's size):
  policy/theta               histogram of θ [K]
  policy/probabilities       image: p_θ as an E×E heatmap, row e1 (applied first), column e2,
                             colour bar in multiples of uniform (1/K)
  policy/element_marginals   image: per-element marginal over the outer steps (paper, Fig. 5)
  policy/entropy             scalar: entropy of p_θ in nats (log 1296 = 7.167 when uniform)
  policy/normalized_entropy  scalar: entropy / log K (1 when uniform)
  policy/top_operations      text: the 10 most probable operations, as a Markdown table

Tags written by `write_lineage`:
  policy/lineage             image: the distribution of the ops the surviving network trained on
  policy/lineage_operations  scalar: how many ops that is

Tags written by `write_outer_step`, n = 0 .. N−1:
  trajectory_<n>/val_accuracy, trajectory_<n>/reward (normalised, ã of Algorithm 1),
  trajectory_<n>/train_loss, trajectory_<n>/train_accuracy,
  train/learning_rate, search/best_trajectory, search/best_val_accuracy

Figures are drawn with matplotlib on `Figure` objects and an Agg canvas of their own, never
pyplot: no global state, no display, safe beside the trainer's threads.

Example:
  >>> writer = tf.summary.create_file_writer(os.path.join(model_dir, "logs"))
  >>> history.append(policy.element_marginals(policy.operation_probabilities(theta)).numpy())
  >>> write_policy(writer, step, theta, np.stack(history))
"""

import math
import operator

import matplotlib.figure
from matplotlib import ticker
from matplotlib import transforms
from matplotlib.backends import backend_agg
import numpy as np
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import policy
from ohl_tf import policy_file

# The marginals figure maps [0, 3/E] (`marginal_scale_max`) onto the colormap, the same at every
# step, so that a colour means the same probability in every column and in every step's figure.
# The uniform 1/E sits a third of the way up (blue); an element that doubles its share (2/E) is
# green, 3/E or more is yellow (clipped), 0 is dark purple.
MARGINAL_SCALE = 3.0  # in multiples of uniform

# viridis: close to perceptually uniform (equal steps in probability look like roughly equal
# steps in colour) and ordered by lightness, so it still reads in greyscale.
COLORMAP = "viridis"
# Figure size and resolution: 36 (to 42) names per axis stay legible at LABEL_FONT_SIZE and an
# image is 700×650 pixels, small enough that rendering one per outer step costs little (~0.1-0.2 s).
FIGURE_SIZE = (7.0, 6.5)  # inches
DPI = 100
LABEL_FONT_SIZE = 6
# Points between the axes and an axis title: room for the longest element name of the paper's
# spaces at LABEL_FONT_SIZE ("TranslateX(0.15)", 16 characters), and per character beyond
# (autoaugment_cifar10's "TranslateY(9) p0.9").
ELEMENT_LABEL_PAD = 44
PADDED_CHARACTERS = len("TranslateX(0.15)")
PAD_PER_EXTRA_CHARACTER = 8
# Where the axes sit, as (left, bottom, width, height) fractions of the figure. Fixed by hand
# rather than by a layout engine: cheaper, the same for every input, and the tests can find the
# colour bar's pixels.
HEATMAP_BOX = (0.17, 0.17, 0.66, 0.74)
COLORBAR_BOX = (0.86, 0.17, 0.025, 0.74)
FAMILY_LINE_COLOUR = "white"

TOP_OPERATIONS = 10


def marginal_scale_max(num_elements):
  """The top of the marginals figure's fixed scale: 3/E, three times the uniform marginal."""
  return MARGINAL_SCALE / num_elements


def family_boundaries(space):
  """First element index of each family after the first (paper: ShearX 0-2, ShearY 3-5, ...,
  Invert 35; Identity 36 in paper_identity): where the name changes."""
  return tuple(e for e in range(1, space.num_elements)
               if space.elements[e].name != space.elements[e - 1].name)


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


def _new_figure():
  """An empty Figure on its own Agg canvas: no pyplot, so no global state and no GUI backend."""
  figure = matplotlib.figure.Figure(figsize=FIGURE_SIZE, dpi=DPI)
  backend_agg.FigureCanvasAgg(figure)
  return figure


def _figure_to_image(figure):
  """Renders `figure` and returns its pixels, uint8 [H, W, 3] (the canvas is opaque RGBA)."""
  figure.canvas.draw()
  return np.array(figure.canvas.buffer_rgba())[..., :3]


def _label_elements(axis, which, title, space):
  """Names the E cells of axis' x or y axis (`which` = "x" or "y") and gives the axis a title.

  The names are plain text artists rather than E tick objects per axis: ticks cost about 1 ms
  each to build and draw, which made them most of a figure's rendering time.
  """
  labels = [element_label(e, space) for e in range(space.num_elements)]
  text = dict(fontsize=LABEL_FONT_SIZE, clip_on=False)
  extra_characters = max(0, max(map(len, labels)) - PADDED_CHARACTERS)
  pad = ELEMENT_LABEL_PAD + PAD_PER_EXTRA_CHARACTER * extra_characters
  if which == "x":
    axis.set_xticks([])
    # x in data coordinates (a cell's column), y in axes coordinates (just below the axes).
    transform = transforms.blended_transform_factory(axis.transData, axis.transAxes)
    for e, label in enumerate(labels):
      axis.text(e, -0.01, label, transform=transform, rotation=90, ha="center", va="top", **text)
    axis.set_xlabel(title, labelpad=pad)
  else:
    axis.set_yticks([])
    transform = transforms.blended_transform_factory(axis.transAxes, axis.transData)
    for e, label in enumerate(labels):
      axis.text(-0.01, e, label, transform=transform, ha="right", va="center", **text)
    axis.set_ylabel(title, labelpad=pad)


def _draw_family_lines(axis, space, rows=True, columns=True):
  """Thin lines between element families (ShearX | ShearY | ... | Invert), between the cells."""
  for boundary in family_boundaries(space):
    if rows:
      axis.axhline(boundary - 0.5, color=FAMILY_LINE_COLOUR, linewidth=0.5)
    if columns:
      axis.axvline(boundary - 0.5, color=FAMILY_LINE_COLOUR, linewidth=0.5)


def _colour_limits(values):
  """(low, high) of `values`, widened around a constant so the colour bar has a range."""
  low, high = float(values.min()), float(values.max())
  # high > low, not high - low > 0: differences that underflow still count as a range.
  if high > low:
    return low, high
  # A constant matrix (the uniform policy at θ = 0) is drawn in the middle colour.
  return low - 0.5, high + 0.5


def _space(shape, name, count):
  """The search space whose number of `count` ("elements" or "operations") is the last axis of
  `shape`, or a ValueError naming the array `name`."""
  try:
    return {"elements": augment.space_of_elements,
            "operations": augment.space_of_operations}[count](shape[-1] if shape else None)
  except ValueError:
    *others, last = (str(getattr(s, f"num_{count}")) for s in augment.SEARCH_SPACES.values())
    sizes = f"{', '.join(others)} or {last}"
    raise ValueError(f"{name} must have {sizes} {count} (a search space's) on its last axis. "
                     f"Received: {name}.shape={shape}") from None


def probability_figure(matrix, title):
  """A distribution over a search space's K = E² operations as a labelled E×E heatmap.

  Cell (e1, e2), row e1 (applied first) and column e2 (applied second), shows the matrix entry
  in multiples of uniform, M[e1, e2] × K (1 = as likely as under the uniform policy). Colours
  span the matrix's own range, so the pattern shows at every stage of training; the colour bar
  gives the numbers. Thin white lines separate the element families.

  Args:
    matrix: float array [E, E] of probabilities (E = 36 in the paper's space, 37 with
      Identity, 42 in autoaugment_cifar10), e.g. `policy.probability_matrix(probs)`; must be finite.
    title: str, drawn above the heatmap.

  Returns:
    uint8 array [H, W, 3], the rendered figure (H, W fixed by FIGURE_SIZE and DPI).

  Raises:
    ValueError: wrong shape or non-finite values.
  """
  matrix = _finite_array(matrix, "matrix", rank=2)
  space = _space(matrix.shape, "matrix", "elements")
  if matrix.shape[1] != matrix.shape[0]:
    raise ValueError(f"matrix must be square, [E, E]. Received: matrix.shape={matrix.shape}")
  ratios = matrix * space.num_operations
  low, high = _colour_limits(ratios)
  figure = _new_figure()
  axis = figure.add_axes(HEATMAP_BOX)
  heatmap = axis.imshow(ratios, cmap=COLORMAP, vmin=low, vmax=high, interpolation="nearest",
                        aspect="auto")
  _label_elements(axis, "x", "e2 (applied second)", space)
  _label_elements(axis, "y", "e1 (applied first)", space)
  axis.set_title(title, fontsize="medium")
  _draw_family_lines(axis, space)
  colorbar = figure.colorbar(heatmap, cax=figure.add_axes(COLORBAR_BOX))
  colorbar.set_label(f"probability × {space.num_operations} (1 = uniform)")
  if low <= 1.0 <= high:
    colorbar.ax.axhline(1.0, color="red", linewidth=1.0)  # Where uniform sits on the scale.
  return _figure_to_image(figure)


def marginals_figure(history):
  """Per-element marginal probability over the outer steps, like the paper's Fig. 5.

  Row e (top to bottom: ShearX(0.1) ... Invert, then Identity in paper_identity) and column t
  (outer step t, left to right) show history[t, e] on the fixed scale [0, 3/E]
  (`marginal_scale_max`): the uniform 1/E is the same blue in every column and every step's
  figure, and values above 3/E are drawn as 3/E.

  Args:
    history: float array [T, E], T ≥ 1, E = 36, 37 or 42 (the search space's elements): row t is
      `policy.element_marginals(p_θ)` after outer step t (row 0: the initial θ); must be finite.

  Returns:
    uint8 array [H, W, 3], the rendered figure (the same size for every T).

  Raises:
    ValueError: wrong shape, T = 0 or non-finite values.
  """
  history = _finite_array(history, "history", rank=2)
  if history.shape[0] == 0:
    raise ValueError("history must have shape [T, E] with T >= 1. "
                     f"Received: history.shape={history.shape}")
  space = _space(history.shape, "history", "elements")
  uniform, top = 1.0 / space.num_elements, marginal_scale_max(space.num_elements)
  figure = _new_figure()
  axis = figure.add_axes(HEATMAP_BOX)
  heatmap = axis.imshow(history.T, cmap=COLORMAP, vmin=0.0, vmax=top,
                        interpolation="nearest", aspect="auto")
  _label_elements(axis, "y", "element", space)
  # Integer steps only: with few columns the default locator would put ticks at ±0.5.
  axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
  axis.set_xlabel("outer step")
  axis.set_title("Element marginals over the outer steps", fontsize="medium")
  _draw_family_lines(axis, space, columns=False)
  colorbar = figure.colorbar(heatmap, cax=figure.add_axes(COLORBAR_BOX), extend="max")
  e = space.num_elements
  colorbar.set_ticks([0.0, uniform, 2.0 * uniform, top],
                     labels=["0", f"1/{e}", f"2/{e}", f"≥ {MARGINAL_SCALE:g}/{e}"])
  colorbar.set_label(f"marginal probability (1/{e} = uniform)")
  colorbar.ax.axhline(uniform, color="red", linewidth=1.0)
  return _figure_to_image(figure)


def element_label(e, space=augment.PAPER):
  """An element's name and magnitude (Table 1's, or AutoAugment's level), and its probability
  when below 1: "ShearX(0.1)", "Rotate(10)", "AutoContrast", "Color(3) p0.4", "Equalize p0.6".

  Args:
    e: int in [0, E).
    space: the `augment.SearchSpace` of the index (default the paper's, E = 36).

  Raises:
    ValueError: e outside [0, E) (a negative index would otherwise silently wrap).
  """
  e = operator.index(e)
  if not 0 <= e < space.num_elements:
    raise ValueError(f"e must be in [0, {space.num_elements}) in --search_space={space.name}. "
                     f"Received: e={e}")
  element = space.elements[e]
  label = element.name if element.magnitude is None else f"{element.name}({element.magnitude:g})"
  return label if element.probability == 1 else f"{label} p{element.probability:g}"


def top_operations_markdown(probs, k=TOP_OPERATIONS):
  """The k most probable operations as a Markdown table (TensorBoard's text plugin renders it).

  Columns: rank (from 1), op index k = E·e1 + e2, first element e1, second element e2 (applied
  as e2(e1(image))), p_θ(op) and its ratio to the uniform 1/K. Equal probabilities are ranked
  by op index, so the table is deterministic (all ties at θ = 0).

  Args:
    probs: float array [K], p_θ over a search space's K = E² operations (1296, 1369 or 1764);
      must be finite.
    k: number of rows, ≥ 1; more than K gives all K.

  Returns:
    str, a header and k rows, lines separated by "\\n".
  """
  probs = _finite_array(probs, "probs", rank=1)
  space = _space(probs.shape, "probs", "operations")
  k = operator.index(k)
  if k < 1:
    raise ValueError(f"k must be >= 1. Received: k={k}")
  # A stable sort of −p keeps equal probabilities in op-index order.
  order = np.argsort(-probs, kind="stable")[:k]
  lines = ["| rank | op | first element | second element | probability | × uniform |",
           "|---:|---:|---|---|---:|---:|"]
  for rank, op in enumerate(order, start=1):
    e1, e2 = divmod(int(op), space.num_elements)
    lines.append(f"| {rank} | {op} | {element_label(e1, space)} | {element_label(e2, space)} | "
                 f"{probs[op]:.6f} | {probs[op] * space.num_operations:.2f} |")
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Writers: eager only (they render with numpy); each flushes before returning.
# ---------------------------------------------------------------------------------------------


def _check_eager(function_name):
  if not tf.executing_eagerly():
    raise RuntimeError(f"{function_name} renders figures with matplotlib and must run eagerly: "
                       "call it after the tf.function outer step returns, not inside it.")


def write_policy(writer, step, theta, marginal_history, figures=True):
  """Writes the policy's state after an outer step (tags policy/*, see the module docstring).

  Args:
    writer: a `tf.summary.SummaryWriter`, e.g. `tf.summary.create_file_writer(model_dir/logs)`.
    step: int, the outer step (x axis of every tag).
    theta: float array, tensor or variable [K], K = E² of a search space (1296, 1369 or 1764).
    marginal_history: float array [T, E], the element marginals of every outer step recorded so
      far *including this one* (the trainer keeps it; its last row should be
      `policy.element_marginals(policy.operation_probabilities(theta))`).
    figures: whether to render and write the two images (about a second of CPU per outer step:
      the trainer draws them at an interval); the other tags are written either way.

  Raises:
    ValueError: wrong shapes or non-finite values (nothing is written then).
    RuntimeError: called inside a tf.function.
  """
  _check_eager("write_policy")
  theta = tf.convert_to_tensor(theta)
  if theta.shape.rank != 1:
    raise ValueError(f"theta must have shape [K]. Received: theta.shape={theta.shape}")
  space = _space(theta.shape.as_list(), "theta", "operations")
  # In float64, so that the uniform policy reads log K and 1.0 exactly (float32 gives
  # 0.9999997), and a flat stretch of the entropy curve is not float32 noise.
  probs = policy.operation_probabilities(tf.cast(theta, tf.float64))
  entropy = float(policy.entropy(probs))
  # Rendered before anything is written, so a bad input leaves no half-written step.
  images = {}
  if figures:
    images = {
        "policy/probabilities": (
            probability_figure(policy.probability_matrix(probs).numpy(),
                               f"p_θ after outer step {step}"),
            "p_θ(e1, e2) in multiples of uniform: row e1 (applied first), column e2; colours "
            "span this step's min .. max (see the colour bar)."),
        "policy/element_marginals": (
            marginals_figure(marginal_history),
            "Element marginals (rows, ShearX(0.1) at the top) over outer steps (columns); "
            f"fixed scale 0 .. 1/{space.num_elements} (uniform) .. "
            f"{MARGINAL_SCALE:g}/{space.num_elements}+."),
    }
  table = top_operations_markdown(probs.numpy())
  with writer.as_default():
    tf.summary.histogram("policy/theta", theta, step=step)
    for tag, (image, description) in images.items():
      tf.summary.image(tag, image[np.newaxis], step=step, description=description)
    tf.summary.scalar("policy/entropy", entropy, step=step)
    tf.summary.scalar("policy/normalized_entropy", entropy / math.log(space.num_operations),
                      step=step)
    tf.summary.text("policy/top_operations", table, step=step)
  # Leaving as_default() flushes already (TF 2.21, eager); flushing here as well keeps "on disk
  # when the function returns" true whatever that context manager does in later versions.
  writer.flush()


def write_lineage(writer, step, lineage_counts, figures=True):
  """Writes what the surviving network trained on: policy/lineage and policy/lineage_operations.

  After every outer step the best trajectory's weights are copied to all the others, so the
  network that survives the run trained on the ops of each period's best trajectory; their
  running sum is its lineage. Where p_θ is what the search currently prefers, this is what the
  final network actually saw.

  Args:
    writer: a `tf.summary.SummaryWriter`.
    step: int, the outer step.
    lineage_counts: int or float array [K] (1296, 1369 or 1764), the running sum of the best
      trajectory's op counts over the outer steps so far.
    figures: whether to render and write the image (see `write_policy`).

  Raises:
    ValueError: see `policy_file.lineage_probabilities` (nothing is written then).
    RuntimeError: called inside a tf.function.
  """
  _check_eager("write_lineage")
  probs = policy_file.lineage_probabilities(lineage_counts)
  total = float(np.sum(np.asarray(lineage_counts, np.float64)))
  if figures:
    image = probability_figure(policy.probability_matrix(probs).numpy(),
                               f"Lineage after outer step {step}: the ops the surviving network "
                               "trained on")
  with writer.as_default():
    if figures:
      tf.summary.image("policy/lineage", image[np.newaxis], step=step,
                       description="The distribution of the ops the surviving network trained "
                       "on (each period's best trajectory), in multiples of uniform: row e1 "
                       "(applied first), column e2.")
    tf.summary.scalar("policy/lineage_operations", total, step=step)
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
