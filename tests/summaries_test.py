"""Tests for ohl_tf.summaries: the policy images and table, and what the writers put on disk.

The writers are checked the way TensorBoard sees them: events are read back with TensorBoard's
own EventAccumulator, images decoded from their PNG bytes.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from ohl_tf import policy
from ohl_tf import summaries

K = summaries.NUM_OPERATIONS
E = summaries.NUM_ELEMENTS
FIRST_COLOUR = summaries.VIRIDIS_STOPS[0]
MIDDLE_COLOUR = summaries.VIRIDIS_STOPS[len(summaries.VIRIDIS_STOPS) // 2]
LAST_COLOUR = summaries.VIRIDIS_STOPS[-1]
UNIFORM_MARGINAL_COLOUR = summaries.apply_colormap(
    (1.0 / E) / summaries.MARGINAL_SCALE_MAX)


def _skewed_theta(seed=0):
  """θ [K] float32 with a clear, asymmetric structure: Invert first is bad, Rotate second good."""
  rng = np.random.default_rng(seed)
  theta = rng.normal(0.0, 0.3, size=(E, E))
  theta[35, :] -= 3.0  # Invert applied first.
  theta[:, 12:15] += 2.0  # Rotate applied second.
  theta[17, 4] = 6.0  # One op, not on the diagonal, well above the rest.
  return theta.reshape(K).astype(np.float32)


def _block(image, row, column, cell):
  """Pixels of block (row, column) of a cell-pixel grid, without its first row and column (where
  family lines may be drawn)."""
  return image[row * cell + 1:(row + 1) * cell, column * cell + 1:(column + 1) * cell]


# ---------------------------------------------------------------------------------------------
# Colormap.
# ---------------------------------------------------------------------------------------------


def test_colormap_endpoints_middle_and_clipping():
  colours = summaries.apply_colormap(np.array([0.0, 0.5, 1.0, -3.0, 7.0]))
  assert colours.dtype == np.uint8 and colours.shape == (5, 3)
  np.testing.assert_array_equal(colours, [FIRST_COLOUR, MIDDLE_COLOUR, LAST_COLOUR,
                                          FIRST_COLOUR, LAST_COLOUR])


def test_colormap_brightness_increases():
  # What makes it readable in greyscale and ordered to the eye: luma never drops along the map.
  colours = summaries.apply_colormap(np.linspace(0.0, 1.0, 257)).astype(np.float64)
  luma = colours @ np.array([0.299, 0.587, 0.114])
  assert np.all(np.diff(luma) >= 0)
  assert luma[-1] - luma[0] > 150


# ---------------------------------------------------------------------------------------------
# heatmap_image.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", [1, 3, 8])
@pytest.mark.parametrize("grid", [True, False])
def test_heatmap_shape_and_dtype(cell, grid):
  matrix = np.random.default_rng(1).uniform(size=(E, E))
  image = summaries.heatmap_image(matrix, cell=cell, grid=grid)
  assert image.shape == (E * cell, E * cell, 3) and image.dtype == np.uint8


@pytest.mark.parametrize("e1, e2", [(0, 0), (17, 4), (4, 17), (2, 35), (35, 0), (35, 35)])
def test_heatmap_one_hot_op_lights_block_e1_e2(e1, e2):
  # From an op index through probability_matrix, so the test also pins k = 36·e1 + e2 → row e1,
  # column e2; (17, 4) and (4, 17) tell a transposed image apart.
  probs = np.zeros(K, np.float32)
  probs[E * e1 + e2] = 1.0
  matrix = policy.probability_matrix(probs).numpy()
  cell = 5
  image = summaries.heatmap_image(matrix, cell=cell, grid=False)
  expected = np.broadcast_to(FIRST_COLOUR, image.shape).copy()
  expected[e1 * cell:(e1 + 1) * cell, e2 * cell:(e2 + 1) * cell] = LAST_COLOUR
  np.testing.assert_array_equal(image, expected)


def test_heatmap_min_and_max_cells_take_the_end_colours():
  matrix = policy.probability_matrix(policy.operation_probabilities(_skewed_theta())).numpy()
  cell = 8
  image = summaries.heatmap_image(matrix, cell=cell)
  low = np.unravel_index(np.argmin(matrix), matrix.shape)
  high = np.unravel_index(np.argmax(matrix), matrix.shape)
  assert high == (17, 4)
  assert np.all(_block(image, *low, cell) == FIRST_COLOUR)
  assert np.all(_block(image, *high, cell) == LAST_COLOUR)
  # Any other block lies strictly inside the range, so it cannot be the max colour.
  assert not np.all(_block(image, 0, 0, cell) == LAST_COLOUR)


@pytest.mark.parametrize("value", [1.0 / K, 0.0, -2.5])
def test_heatmap_of_a_constant_matrix_is_the_middle_colour(value):
  image = summaries.heatmap_image(np.full((E, E), value), grid=False)
  assert np.all(image == MIDDLE_COLOUR)


def test_heatmap_family_lines():
  cell = 8
  matrix = np.zeros((E, E))  # All cells the middle colour, so only lines are white.
  image = summaries.heatmap_image(matrix, cell=cell, grid=True)
  white = np.all(image == summaries.GRID_COLOUR, axis=-1)
  line_pixels = [b * cell for b in summaries.FAMILY_BOUNDARIES]
  expected = np.zeros_like(white)
  expected[line_pixels, :] = True
  expected[:, line_pixels] = True
  np.testing.assert_array_equal(white, expected)
  # 11 families of three, then AutoContrast, Equalize and Invert alone: 13 boundaries.
  assert summaries.FAMILY_BOUNDARIES == (3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 34, 35)


def test_heatmap_has_no_lines_when_cells_are_small():
  matrix = np.random.default_rng(2).uniform(size=(E, E))
  np.testing.assert_array_equal(summaries.heatmap_image(matrix, cell=3, grid=True),
                                summaries.heatmap_image(matrix, cell=3, grid=False))


@pytest.mark.parametrize("matrix, cell, message", [
    (np.zeros((E, E + 1)), 8, r"shape \[36, 36\].*\(36, 37\)"),
    (np.zeros(K), 8, r"rank 2.*\(1296,\)"),
    (np.where(np.eye(E) > 0, np.nan, 0.0), 8, r"finite.*36 NaN"),
    (np.zeros((E, E)), 0, r"cell must be >= 1"),
])
def test_heatmap_rejects_bad_input(matrix, cell, message):
  with pytest.raises(ValueError, match=message):
    summaries.heatmap_image(matrix, cell=cell)


# ---------------------------------------------------------------------------------------------
# marginals_image.
# ---------------------------------------------------------------------------------------------


def test_marginals_image_shape_and_uniform_colour():
  history = np.full((7, E), 1.0 / E)
  image = summaries.marginals_image(history, cell=4, grid=False)
  assert image.shape == (E * 4, 7 * 4, 3) and image.dtype == np.uint8
  assert np.all(image == UNIFORM_MARGINAL_COLOUR)
  # Uniform reads a third of the way up the map: neither end, so moves both ways are visible.
  assert not np.array_equal(UNIFORM_MARGINAL_COLOUR, FIRST_COLOUR)
  assert not np.array_equal(UNIFORM_MARGINAL_COLOUR, LAST_COLOUR)


def test_marginals_image_columns_are_steps_and_rows_are_elements():
  cell = 4
  history = np.full((5, E), 1.0 / E)
  history[2, 6] = summaries.MARGINAL_SCALE_MAX  # Step 2, TranslateX(0.15): top of the scale.
  history[4, 35] = 0.0  # Step 4, Invert: bottom of the scale.
  image = summaries.marginals_image(history, cell=cell, grid=False)
  expected = np.broadcast_to(UNIFORM_MARGINAL_COLOUR, image.shape).copy()
  expected[6 * cell:7 * cell, 2 * cell:3 * cell] = LAST_COLOUR
  expected[35 * cell:36 * cell, 4 * cell:5 * cell] = FIRST_COLOUR
  np.testing.assert_array_equal(image, expected)


def test_marginals_scale_is_fixed_across_steps_and_clips():
  # The uniform column looks the same whatever the other steps hold (no min-max rescaling), and
  # a marginal above 3/36 is drawn like 3/36.
  uniform = np.full((1, E), 1.0 / E)
  skewed = np.full((1, E), 0.5 / E)
  skewed[0, 0] = 1.0 - 35 * 0.5 / E  # ≈ 0.51, far above the scale.
  alone = summaries.marginals_image(uniform, cell=4)
  together = summaries.marginals_image(np.concatenate([uniform, skewed]), cell=4)
  np.testing.assert_array_equal(together[:, :4], alone)
  assert np.all(_block(together, 0, 1, 4) == LAST_COLOUR)


def test_marginals_image_draws_only_horizontal_family_lines():
  cell = 8
  image = summaries.marginals_image(np.full((3, E), 1.0 / E), cell=cell, grid=True)
  white_rows = np.all(image == summaries.GRID_COLOUR, axis=(1, 2))
  np.testing.assert_array_equal(np.flatnonzero(white_rows),
                                [b * cell for b in summaries.FAMILY_BOUNDARIES])
  assert not np.any(np.all(image == summaries.GRID_COLOUR, axis=(0, 2)))


@pytest.mark.parametrize("history, message", [
    (np.zeros((0, E)), r"T >= 1.*\(0, 36\)"),
    (np.zeros((4, E - 1)), r"\[T, 36\].*\(4, 35\)"),
    (np.full(E, 1.0 / E), r"rank 2"),
    (np.full((2, E), np.inf), r"finite"),
])
def test_marginals_image_rejects_bad_input(history, message):
  with pytest.raises(ValueError, match=message):
    summaries.marginals_image(history)


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
    (np.full(K - 1, 1.0 / K), 10, r"shape \[1296\]"),
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
        summaries.heatmap_image(policy.probability_matrix(probs).numpy()))
    np.testing.assert_array_equal(_decode_image(events["policy/element_marginals"][i][1]),
                                  summaries.marginals_image(np.stack(history[:i + 1])))

    text = events["policy/top_operations"][i][1].item().decode("utf-8")
    assert text.startswith(summaries.top_operations_markdown(probs.numpy()))
    assert "Heatmap range" in text

  # At step 3 the top op is (Color(0.9), ShearY(0.2)) = 36·17 + 4, by construction.
  text = events["policy/top_operations"][1][1].item().decode("utf-8")
  assert _table_rows(text.split("\n\n")[0])[0][:4] == ["1", str(E * 17 + 4), "Color(0.9)",
                                                       "ShearY(0.2)"]
  assert events["policy/entropy"][0][1] == np.float32(math.log(K))
  assert events["policy/normalized_entropy"][0][1] == 1.0
  assert events["policy/entropy"][1][1] < events["policy/entropy"][0][1]
  # The marginals image grows by one column of cells per step.
  assert _decode_image(events["policy/element_marginals"][1][1]).shape[1] == 2 * 8


def test_write_outer_step_round_trip(log_dir_and_writer):
  log_dir, writer = log_dir_and_writer
  accuracies = np.array([0.61, 0.64, 0.58], np.float32)
  values = {
      # Tensors, as the outer step returns them.
      "val_accuracies": tf.constant(accuracies),
      "normalized_rewards": policy.normalized_rewards(accuracies),
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

  with pytest.raises(RuntimeError, match=r"must run eagerly"):
    traced(tf.zeros([K]))
