"""Tests for ohl_tf.summaries: the policy figures and table, and what the writers put on disk.

Figures are checked by their pixels where the layout puts them: the centre of a heatmap cell and
the ends of the colour bar (summaries.HEATMAP_BOX and COLORBAR_BOX), against viridis.

The writers are checked the way TensorBoard sees them: events are read back with TensorBoard's
own EventAccumulator, images decoded from their PNG bytes.
"""

import math

import matplotlib
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from ohl_tf import augment
from ohl_tf import estimators
from ohl_tf import policy
from ohl_tf import policy_file
from ohl_tf import summaries

K = augment.NUM_OPERATIONS
E = augment.NUM_ELEMENTS
VIRIDIS = matplotlib.colormaps["viridis"]
# RGB of the bottom and top of the colormap, as uint8.
BOTTOM_COLOUR = np.array(VIRIDIS(0.0)[:3]) * 255
TOP_COLOUR = np.array(VIRIDIS(1.0)[:3]) * 255
HEIGHT = round(summaries.FIGURE_SIZE[1] * summaries.DPI)
WIDTH = round(summaries.FIGURE_SIZE[0] * summaries.DPI)


def _skewed_theta(seed=0):
  """θ [K] float32 with a clear, asymmetric structure: Invert first is bad, Rotate second good."""
  rng = np.random.default_rng(seed)
  theta = rng.normal(0.0, 0.3, size=(E, E))
  theta[35, :] -= 3.0  # Invert applied first.
  theta[:, 12:15] += 2.0  # Rotate applied second.
  theta[17, 4] = 6.0  # One op, not on the diagonal, well above the rest.
  return theta.reshape(K).astype(np.float32)


def _matrix(theta):
  return policy.probability_matrix(policy.operation_probabilities(theta)).numpy()


def _pixel(image, box, x, y):
  """The pixel at fractions (x, y) of `box` (figure fractions, y upwards) of a rendered figure."""
  left, bottom, width, height = box
  column = int((left + x * width) * image.shape[1])
  row = int((1.0 - (bottom + y * height)) * image.shape[0])
  return image[row, column].astype(np.float64)


def _cell(image, row, column, num_rows=E, num_columns=E):
  """The pixel at the centre of heatmap cell (row, column), row 0 at the top."""
  return _pixel(image, summaries.HEATMAP_BOX, (column + 0.5) / num_columns,
                1.0 - (row + 0.5) / num_rows)


def _viridis(fraction):
  """uint8-scale RGB of the colormap at `fraction` of its range."""
  return np.array(VIRIDIS(fraction)[:3]) * 255


def _assert_colour(pixel, expected, atol=3):
  np.testing.assert_allclose(pixel, expected, atol=atol)


# ---------------------------------------------------------------------------------------------
# probability_figure.
# ---------------------------------------------------------------------------------------------


def test_probability_figure_shape_and_dtype():
  image = summaries.probability_figure(_matrix(_skewed_theta()), "p")
  assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8


def test_probability_figure_differs_with_the_policy_and_the_title():
  uniform = summaries.probability_figure(_matrix(np.zeros(K)), "p")
  skewed = summaries.probability_figure(_matrix(_skewed_theta()), "p")
  retitled = summaries.probability_figure(_matrix(np.zeros(K)), "another title")
  assert np.any(uniform != skewed)
  assert np.any(uniform != retitled)
  # Deterministic: the same input draws the same pixels (the writer's round trip relies on it).
  np.testing.assert_array_equal(uniform, summaries.probability_figure(_matrix(np.zeros(K)), "p"))


def test_probability_figure_colour_bar_spans_the_colormap():
  image = summaries.probability_figure(_matrix(_skewed_theta()), "p")
  # The bar spans the box: a fraction y of its height is the colormap at y.
  bottom = _pixel(image, summaries.COLORBAR_BOX, 0.5, 0.02)
  top = _pixel(image, summaries.COLORBAR_BOX, 0.5, 0.98)
  assert np.abs(top - bottom).sum() > 200
  _assert_colour(bottom, _viridis(0.02))
  _assert_colour(top, _viridis(0.98))


@pytest.mark.parametrize("e1, e2", [(17, 4), (4, 17), (2, 35), (35, 0)])
def test_probability_figure_draws_op_e1_e2_in_row_e1_column_e2(e1, e2):
  # From an op index through probability_matrix, so the test also pins k = 36·e1 + e2 → row e1,
  # column e2; (17, 4) and (4, 17) tell a transposed image apart.
  probs = np.full(K, 0.5 / (K - 1))
  probs[E * e1 + e2] = 0.5
  image = summaries.probability_figure(policy.probability_matrix(probs).numpy(), "one op")
  _assert_colour(_cell(image, e1, e2), TOP_COLOUR)
  _assert_colour(_cell(image, e2, e1) if e1 != e2 else _cell(image, 0, 1), BOTTOM_COLOUR)


def test_probability_figure_min_and_max_cells_take_the_end_colours():
  matrix = _matrix(_skewed_theta())
  image = summaries.probability_figure(matrix, "p")
  low = np.unravel_index(np.argmin(matrix), matrix.shape)
  high = np.unravel_index(np.argmax(matrix), matrix.shape)
  assert high == (17, 4)
  _assert_colour(_cell(image, *low), BOTTOM_COLOUR)
  _assert_colour(_cell(image, *high), TOP_COLOUR)


@pytest.mark.parametrize("value", [1.0 / K, 0.0])
def test_probability_figure_of_a_constant_matrix_is_the_middle_colour(value):
  image = summaries.probability_figure(np.full((E, E), value), "constant")
  middle = _viridis(0.5)
  for row, column in [(0, 0), (20, 7), (35, 35)]:
    _assert_colour(_cell(image, row, column), middle)


@pytest.mark.parametrize("matrix, message", [
    (np.zeros((E, E + 1)), r"matrix must be square.*\(36, 37\)"),
    (np.zeros((E + 2, E + 2)), r"matrix must have 36, 37 or 42 elements.*\(38, 38\)"),
    (np.zeros(K), r"matrix must have rank 2.*\(1296,\)"),
    (np.where(np.eye(E) > 0, np.nan, 0.0), r"matrix must be finite.*36 NaN"),
    (np.full((E, E), np.inf), r"matrix must be finite"),
])
def test_probability_figure_rejects_bad_input(matrix, message):
  with pytest.raises(ValueError, match=message):
    summaries.probability_figure(matrix, "bad")


def test_family_boundaries():
  # 11 families of three, then AutoContrast, Equalize and Invert alone: 13 boundaries.
  paper = (3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 34, 35)
  assert summaries.family_boundaries(augment.PAPER) == paper
  assert summaries.family_boundaries(augment.PAPER_IDENTITY) == paper + (36,)


def test_the_figures_of_the_identity_space_label_and_colour_37_elements():
  space = augment.PAPER_IDENTITY
  theta = np.zeros([space.num_elements, space.num_elements], np.float32)
  theta[36, 36] = 6.0  # (Identity, Identity): no operation, far above the rest.
  probs = policy.operation_probabilities(theta.reshape(-1))
  image = summaries.probability_figure(policy.probability_matrix(probs).numpy(), "p")
  assert image.shape == (HEIGHT, WIDTH, 3)
  _assert_colour(_cell(image, 36, 36, num_rows=37, num_columns=37), TOP_COLOUR)
  _assert_colour(_cell(image, 0, 36, num_rows=37, num_columns=37), BOTTOM_COLOUR)
  history = np.full((3, 37), 1.0 / 37)
  history[1, 36] = summaries.marginal_scale_max(37)  # Identity at the top of the scale.
  marginals = summaries.marginals_figure(history)
  _assert_colour(_cell(marginals, 36, 1, num_rows=37, num_columns=3), TOP_COLOUR)
  _assert_colour(_cell(marginals, 36, 0, num_rows=37, num_columns=3),
                 _viridis(1 / summaries.MARGINAL_SCALE))
  rows = _table_rows(summaries.top_operations_markdown(probs.numpy(), k=2))
  assert rows[0][1:4] == ["1368", "Identity", "Identity"]
  assert summaries.element_label(36, space) == "Identity"
  with pytest.raises(ValueError, match=r"history must have 36, 37 or 42"):
    summaries.marginals_figure(np.full((3, 38), 1.0 / 38))


# ---------------------------------------------------------------------------------------------
# marginals_figure.
# ---------------------------------------------------------------------------------------------


def _uniform_marginal_colour():
  return _viridis((1.0 / E) / summaries.marginal_scale_max(E))


@pytest.mark.parametrize("steps", [1, 7, 200])
def test_marginals_figure_shape_dtype_and_uniform_colour(steps):
  image = summaries.marginals_figure(np.full((steps, E), 1.0 / E))
  assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
  # Middle columns: with 200 steps an edge column's centre is a pixel from the axes' frame.
  for row in (0, 18, 35):
    _assert_colour(_cell(image, row, steps // 2, num_columns=steps), _uniform_marginal_colour())


def test_marginals_figure_columns_are_steps_and_rows_are_elements():
  history = np.full((5, E), 1.0 / E)
  history[2, 6] = summaries.marginal_scale_max(E)  # Step 2, TranslateX(0.15): top of the scale.
  history[4, 35] = 0.0  # Step 4, Invert: bottom of the scale.
  image = summaries.marginals_figure(history)
  _assert_colour(_cell(image, 6, 2, num_columns=5), TOP_COLOUR)
  _assert_colour(_cell(image, 35, 4, num_columns=5), BOTTOM_COLOUR)
  _assert_colour(_cell(image, 6, 3, num_columns=5), _uniform_marginal_colour())
  assert np.any(image != summaries.marginals_figure(np.full((5, E), 1.0 / E)))


def test_marginals_scale_is_fixed_across_steps_and_clips():
  # The uniform column has the same colour whatever the other steps hold (no min-max
  # rescaling), and a marginal above 3/36 is drawn like 3/36.
  uniform = np.full((1, E), 1.0 / E)
  skewed = np.full((1, E), 0.5 / E)
  skewed[0, 0] = 1.0 - 35 * 0.5 / E  # ≈ 0.51, far above the scale.
  together = summaries.marginals_figure(np.concatenate([uniform, skewed]))
  _assert_colour(_cell(together, 0, 0, num_columns=2), _uniform_marginal_colour())
  _assert_colour(_cell(together, 0, 1, num_columns=2), TOP_COLOUR)


def test_marginals_figure_colour_bar_spans_the_fixed_scale():
  image = summaries.marginals_figure(np.full((3, E), 1.0 / E))
  bottom = _pixel(image, summaries.COLORBAR_BOX, 0.5, 0.02)
  # Below the "extend" triangle at the top, which marks that larger values are clipped.
  top = _pixel(image, summaries.COLORBAR_BOX, 0.5, 0.85)
  assert np.abs(top - bottom).sum() > 200
  _assert_colour(bottom, BOTTOM_COLOUR, atol=10)


@pytest.mark.parametrize("history, message", [
    (np.zeros((0, E)), r"history must have shape.*T >= 1.*\(0, 36\)"),
    (np.zeros((4, E - 1)), r"history must have 36, 37 or 42 elements.*\(4, 35\)"),
    (np.full(E, 1.0 / E), r"history must have rank 2"),
    (np.full((2, E), np.inf), r"history must be finite"),
])
def test_marginals_figure_rejects_bad_input(history, message):
  with pytest.raises(ValueError, match=message):
    summaries.marginals_figure(history)


# ---------------------------------------------------------------------------------------------
# Labels and the top-operations table.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("e, label", [
    (0, "ShearX(0.1)"), (5, "ShearY(0.3)"), (6, "TranslateX(0.15)"), (11, "TranslateY(0.45)"),
    (12, "Rotate(10)"), (17, "Color(0.9)"), (18, "Posterize(4.4)"), (22, "Solarize(102)"),
    (24, "Contrast(1.3)"), (29, "Sharpness(1.9)"), (31, "Brightness(1.6)"),
    (33, "AutoContrast"), (34, "Equalize"), (35, "Invert"), (np.int64(14), "Rotate(30)"),
])
def test_element_label(e, label):
  assert summaries.element_label(e) == label


def test_element_labels_are_distinct():
  assert len({summaries.element_label(e) for e in range(E)}) == E


@pytest.mark.parametrize("e", [-1, 36])
def test_element_label_rejects_out_of_range(e):
  with pytest.raises(ValueError, match=r"e must be in \[0, 36\)"):
    summaries.element_label(e)


def _table_rows(markdown):
  """The data rows of the table as lists of stripped cells (header and separator dropped)."""
  lines = markdown.split("\n")
  assert lines[0].startswith("| rank | op |") and lines[1].startswith("|---")
  return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_top_operations_order_labels_and_values():
  probs = np.full(K, 1.0)
  probs[E * 35 + 33] = 9.0  # (Invert, AutoContrast)
  probs[E * 0 + 35] = 5.0  # (ShearX(0.1), Invert)
  probs[E * 12 + 12] = 3.0  # (Rotate(10), Rotate(10))
  probs /= probs.sum()
  rows = _table_rows(summaries.top_operations_markdown(probs, k=4))
  assert [row[:4] for row in rows] == [
      ["1", str(E * 35 + 33), "Invert", "AutoContrast"],
      ["2", "35", "ShearX(0.1)", "Invert"],
      ["3", str(E * 12 + 12), "Rotate(10)", "Rotate(10)"],
      ["4", "0", "ShearX(0.1)", "ShearX(0.1)"],  # Tied with all the rest: lowest op index.
  ]
  top = probs[E * 35 + 33]
  assert rows[0][4] == f"{top:.6f}"
  assert rows[0][5] == f"{top * K:.2f}"
  np.testing.assert_allclose([float(row[5]) for row in rows], probs[[1293, 35, 444, 0]] * K,
                             atol=0.005)


def test_top_operations_of_the_uniform_policy_are_ratio_one_in_index_order():
  rows = _table_rows(summaries.top_operations_markdown(np.full(K, 1.0 / K)))
  assert len(rows) == summaries.TOP_OPERATIONS == 10
  assert [row[1] for row in rows] == [str(k) for k in range(10)]
  assert {row[5] for row in rows} == {"1.00"}


def test_top_operations_k_larger_than_k_lists_every_op_once():
  probs = policy.operation_probabilities(_skewed_theta()).numpy()
  rows = _table_rows(summaries.top_operations_markdown(probs, k=5000))
  assert sorted(int(row[1]) for row in rows) == list(range(K))
  shown = [float(row[4]) for row in rows]
  assert shown == sorted(shown, reverse=True)


@pytest.mark.parametrize("probs, k, message", [
    (np.full(K - 1, 1.0 / K), 10, r"probs must have 1296, 1369 or 1764 operations.*\(1295,\)"),
    (np.full(K, np.nan), 10, r"finite"),
    (np.full(K, 1.0 / K), 0, r"k must be >= 1"),
])
def test_top_operations_rejects_bad_input(probs, k, message):
  with pytest.raises(ValueError, match=message):
    summaries.top_operations_markdown(probs, k=k)


# ---------------------------------------------------------------------------------------------
# Writers, read back with TensorBoard's EventAccumulator.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def log_dir_and_writer(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path))
  yield tmp_path, writer
  writer.close()


def _read_events(log_dir):
  """{tag: [(step, ndarray), ...]} and {tag: plugin name}, as TensorBoard loads them.

  The writer is *not* closed first: what is read is what the writer functions flushed.
  """
  # 0 = keep every event (the default guidance samples some tags down).
  accumulator = event_accumulator.EventAccumulator(
      str(log_dir), size_guidance={kind: 0 for kind in event_accumulator.DEFAULT_SIZE_GUIDANCE})
  accumulator.Reload()
  # tf.summary in TF 2 writes every kind (scalar, image, histogram, text) as a tensor event; the
  # plugin name in the metadata decides which dashboard shows it.
  assert not any(accumulator.Tags()[kind] for kind in ("scalars", "images", "histograms"))
  events = {tag: [(event.step, tf.make_ndarray(event.tensor_proto))
                  for event in accumulator.Tensors(tag)]
            for tag in accumulator.Tags()["tensors"]}
  plugins = {tag: accumulator.SummaryMetadata(tag).plugin_data.plugin_name for tag in events}
  return events, plugins


POLICY_PLUGINS = {
    "policy/theta": "histograms",
    "policy/probabilities": "images",
    "policy/element_marginals": "images",
    "policy/entropy": "scalars",
    "policy/normalized_entropy": "scalars",
    "policy/top_operations": "text",
}


def _decode_image(value):
  """A tf.summary.image tensor [width, height, png...] of one image → uint8 [H, W, 3]."""
  width, height, png = value
  image = tf.io.decode_png(png).numpy()
  assert (int(width), int(height)) == (image.shape[1], image.shape[0])
  return image


def test_write_policy_round_trip(log_dir_and_writer):
  log_dir, writer = log_dir_and_writer
  thetas = {0: np.zeros(K, np.float32), 3: _skewed_theta()}
  history = []
  for step, theta in thetas.items():
    history.append(policy.element_marginals(policy.operation_probabilities(theta)).numpy())
    # θ as the trainer holds it: a variable.
    summaries.write_policy(writer, step, tf.Variable(theta), np.stack(history))

  events, plugins = _read_events(log_dir)
  assert plugins == POLICY_PLUGINS
  for tag in POLICY_PLUGINS:
    assert [step for step, _ in events[tag]] == [0, 3], tag

  for i, (step, theta) in enumerate(thetas.items()):
    # The writer works in float64 (theta is float32 here).
    probs = policy.operation_probabilities(theta.astype(np.float64))
    entropy = float(policy.entropy(probs))
    assert events["policy/entropy"][i][1] == np.float32(entropy)
    assert events["policy/normalized_entropy"][i][1] == np.float32(entropy / math.log(K))

    buckets = events["policy/theta"][i][1]  # [buckets, 3]: left edge, right edge, count.
    assert buckets.shape[1] == 3 and buckets[:, 2].sum() == K
    assert buckets[0, 0] <= theta.min() and buckets[-1, 1] >= theta.max()

    np.testing.assert_array_equal(
        _decode_image(events["policy/probabilities"][i][1]),
        summaries.probability_figure(policy.probability_matrix(probs).numpy(),
                                     f"p_θ after outer step {step}"))
    np.testing.assert_array_equal(_decode_image(events["policy/element_marginals"][i][1]),
                                  summaries.marginals_figure(np.stack(history[:i + 1])))

    text = events["policy/top_operations"][i][1].item().decode("utf-8")
    assert text == summaries.top_operations_markdown(probs.numpy())

  # At step 3 the top op is (Color(0.9), ShearY(0.2)) = 36·17 + 4, by construction.
  text = events["policy/top_operations"][1][1].item().decode("utf-8")
  assert _table_rows(text)[0][:4] == ["1", str(E * 17 + 4), "Color(0.9)", "ShearY(0.2)"]
  assert events["policy/entropy"][0][1] == np.float32(math.log(K))
  assert events["policy/normalized_entropy"][0][1] == 1.0
  assert events["policy/entropy"][1][1] < events["policy/entropy"][0][1]
  # The figures keep their size as steps are added, and show the change.
  for tag in ("policy/probabilities", "policy/element_marginals"):
    first, last = (_decode_image(value) for _, value in events[tag])
    assert first.shape == last.shape and np.any(first != last), tag


def _lineage_counts():
  """Op counts [K] of a lineage that mostly applied (Rotate(20), Invert) and a little of all."""
  counts = np.random.default_rng(3).integers(0, 4, size=K)
  counts[E * 13 + 35] = 500
  return counts


def test_write_lineage_round_trip(log_dir_and_writer):
  log_dir, writer = log_dir_and_writer
  counts = _lineage_counts()
  summaries.write_lineage(writer, 5, counts)
  summaries.write_lineage(writer, 6, counts.astype(np.float64) + 1.0)

  events, plugins = _read_events(log_dir)
  assert plugins == {"policy/lineage": "images", "policy/lineage_operations": "scalars"}
  assert [step for step, _ in events["policy/lineage"]] == [5, 6]
  assert [value for _, value in events["policy/lineage_operations"]] == [
      np.float32(counts.sum()), np.float32(counts.sum() + K)]
  first, second = (_decode_image(value) for _, value in events["policy/lineage"])
  assert first.shape == (HEIGHT, WIDTH, 3) and np.any(first != second)
  # The dominant op is the top of the scale, in row e1 = Rotate(20), column e2 = Invert.
  _assert_colour(_cell(first, 13, 35), TOP_COLOUR)


def test_lineage_probabilities_are_counts_over_their_sum():
  counts = _lineage_counts()
  probs = policy_file.lineage_probabilities(counts)
  np.testing.assert_allclose(probs, counts / counts.sum())
  assert probs.dtype == np.float64


@pytest.mark.parametrize("counts, message", [
    (np.zeros(K), r"lineage_counts must not all be 0"),
    (np.zeros(K, np.int64), r"lineage_counts must not all be 0"),
    (np.ones(K - 1), r"lineage_counts must have shape \[1296\] or \[1369\].*\(1295,\)"),
    (np.ones((2, K)), r"lineage_counts must have rank 1"),
    (np.where(np.arange(K) == 7, np.nan, 1.0), r"lineage_counts must be finite"),
    (np.where(np.arange(K) == 7, -2.0, 1.0), r"lineage_counts must be >= 0.*1 negative"),
])
def test_write_lineage_rejects_bad_counts_and_writes_nothing(log_dir_and_writer, counts,
                                                             message):
  log_dir, writer = log_dir_and_writer
  with pytest.raises(ValueError, match=message):
    summaries.write_lineage(writer, 1, counts)
  writer.flush()
  assert _read_events(log_dir)[0] == {}


def test_write_outer_step_round_trip(log_dir_and_writer):
  log_dir, writer = log_dir_and_writer
  accuracies = np.array([0.61, 0.64, 0.58], np.float32)
  values = {
      # Tensors, as the outer step returns them.
      "val_accuracies": tf.constant(accuracies),
      "normalized_rewards": estimators.normalized_rewards(accuracies),
      "train_loss": np.array([1.25, 1.5, 1.75]),
      "train_accuracy": [0.5, 0.55, 0.45],
  }
  summaries.write_outer_step(writer, 7, **values, learning_rate=tf.constant(0.125),
                             best_trajectory=tf.constant(1))

  events, plugins = _read_events(log_dir)
  expected = {"train/learning_rate": 0.125, "search/best_trajectory": 1.0,
              "search/best_val_accuracy": accuracies[1]}
  tag_of = {"val_accuracies": "val_accuracy", "normalized_rewards": "reward",
            "train_loss": "train_loss", "train_accuracy": "train_accuracy"}
  for name, array in values.items():
    for n, value in enumerate(np.asarray(array)):
      expected[f"trajectory_{n}/{tag_of[name]}"] = value
  assert set(plugins) == set(expected) and set(plugins.values()) == {"scalars"}
  for tag, value in expected.items():
    (step, written), = events[tag]
    assert step == 7
    assert written == np.float32(value), tag


def test_write_outer_step_rejects_inconsistent_input(log_dir_and_writer):
  _, writer = log_dir_and_writer
  good = dict(val_accuracies=[0.5, 0.6], normalized_rewards=[-1.0, 1.0], train_loss=[1.0, 1.1],
              train_accuracy=[0.4, 0.5], learning_rate=0.1, best_trajectory=1)
  with pytest.raises(ValueError, match=r"same length.*'train_loss': 3"):
    summaries.write_outer_step(writer, 0, **{**good, "train_loss": [1.0, 1.1, 1.2]})
  with pytest.raises(ValueError, match=r"best_trajectory must be in \[0, 2\)"):
    summaries.write_outer_step(writer, 0, **{**good, "best_trajectory": 2})
  with pytest.raises(ValueError, match=r"learning_rate must be a scalar"):
    summaries.write_outer_step(writer, 0, **{**good, "learning_rate": [0.1, 0.2]})
  with pytest.raises(ValueError, match=r"shape \[N\]"):
    summaries.write_outer_step(writer, 0, **{**good, "val_accuracies": [[0.5, 0.6]]})


def test_write_policy_with_nan_theta_raises_and_writes_nothing(log_dir_and_writer):
  log_dir, writer = log_dir_and_writer
  theta = _skewed_theta()
  theta[5] = np.nan
  with pytest.raises(ValueError, match=r"finite"):
    summaries.write_policy(writer, 0, theta, np.full((1, E), 1.0 / E))
  writer.flush()
  assert _read_events(log_dir)[0] == {}


def test_writers_refuse_to_run_inside_tf_function(log_dir_and_writer):
  _, writer = log_dir_and_writer

  @tf.function
  def traced(theta):
    summaries.write_policy(writer, 0, theta, np.full((1, E), 1.0 / E))

  @tf.function
  def traced_lineage(counts):
    summaries.write_lineage(writer, 0, counts)

  with pytest.raises(RuntimeError, match=r"write_policy .*must run eagerly"):
    traced(tf.zeros([K]))
  with pytest.raises(RuntimeError, match=r"write_lineage .*must run eagerly"):
    traced_lineage(tf.ones([K]))


def test_without_figures_the_writers_skip_only_the_images(log_dir_and_writer):
  log_dir, writer = log_dir_and_writer
  theta = np.zeros(K, np.float32)
  summaries.write_policy(writer, 1, theta, np.full((1, 36), 1 / 36), figures=False)
  summaries.write_lineage(writer, 1, np.ones(K), figures=False)
  events = event_accumulator.EventAccumulator(
      str(log_dir), size_guidance={event_accumulator.TENSORS: 0})
  events.Reload()
  tags = set(events.Tags()["tensors"])
  assert {"policy/theta", "policy/entropy", "policy/top_operations",
          "policy/lineage_operations"} <= tags
  assert not tags & {"policy/probabilities", "policy/element_marginals", "policy/lineage"}
