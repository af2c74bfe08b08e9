r"""Draws a run's augmentation policy as PNG files, from its latest checkpoint.

  python -m ohl_tf.report MODEL_DIR [--out=DIR]

MODEL_DIR is a run's --model_dir, finished or still training: the report reads the policy of
the newest checkpoint in MODEL_DIR/checkpoints whose policy tensors are intact, with
`tf.train.load_checkpoint`, and builds no model, so it runs in seconds beside a training run.
Into --out (default MODEL_DIR/report/) it writes the figures the run's TensorBoard shows
(`ohl_tf.summaries`):

  probabilities.png      p_θ as an E×E heatmap (36×36, 37×37 with Identity, 42×42 in
                         autoaugment_cifar10), row e1 (applied first), column e2
  element_marginals.png  the per-element marginals over outer steps 0 .. now (paper, Fig. 5)
  lineage.png            the ops the surviving network trained on (only runs that record it)

and prints one line per file and a summary: the outer step, the entropy of p_θ and the five most
probable operations.
"""

import dataclasses
import json
import os
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import augmentation_policies
from ohl_tf import checkpoints
from ohl_tf import policy
from ohl_tf import policy_file
from ohl_tf import run_directory
from ohl_tf import summaries

_OUT = flags.DEFINE_string("out", None, "Folder for the PNG files. Default: MODEL_DIR/report.")

# What the run's checkpoint holds (`run_directory`'s object-based names).
THETA_KEY = run_directory.variable_key(run_directory.THETA)
THETA_HISTORY_KEY = run_directory.variable_key(run_directory.THETA_HISTORY)
OUTER_STEP_KEY = run_directory.variable_key(run_directory.OUTER_STEP)
# Only in runs that record the lineage (the surviving network's op counts).
LINEAGE_KEY = run_directory.variable_key(run_directory.LINEAGE)

TOP_OPERATIONS = 5


class ReportError(Exception):
  """The run cannot be drawn; the message names the directory and what was expected."""


@dataclasses.dataclass(frozen=True)
class RunState:
  """What the report draws, as read from a checkpoint.

  Attributes:
    checkpoint: path prefix of the checkpoint read.
    outer_step: int, outer steps completed.
    theta: float64 [K], θ after the last outer step (K = 1296, 1369 in --search_space=
      paper_identity, 1764 in autoaugment_cifar10: the size says the space).
    theta_history: float64 [outer_step + 1, K], row t = θ after outer step t
      (row 0: --theta_init).
    lineage: float64 [K], running op counts of each period's best trajectory, or None when
      the run does not record them.
  """
  checkpoint: str
  outer_step: int
  theta: np.ndarray
  theta_history: np.ndarray
  lineage: np.ndarray | None

  @property
  def space(self):
    """The run's `augment.SearchSpace`, the one of θ's size."""
    return augment.space_of_operations(self.theta.shape[0])


def _check_policy_has_theta(model_dir):
  """Refuses a run whose --policy does not use θ: its checkpoint's θ stays 0, meaningless."""
  path = run_directory.path(model_dir, run_directory.CONFIG)
  if not os.path.exists(path):
    return  # An older run or a bare checkpoint folder: the checkpoint's keys decide.
  with open(path, encoding="utf-8") as f:
    spec = json.load(f).get("policy")
  try:
    run_policy = augmentation_policies.parse(spec)
  except ValueError:
    return  # A policy name this version does not know: let the checkpoint's keys decide.
  if not run_policy.has_theta:
    raise ReportError(f"{model_dir} is a --policy={spec} run: its augmentation is not p_θ, so "
                      "there is no policy to draw. The report draws --policy=ohl (and uniform) "
                      "runs.")


def read_run(model_dir):
  """Reads the latest checkpoint of the run in `model_dir`, without building any model.

  Safe while the run trains: the trainer's CheckpointManager publishes a checkpoint only once it
  is complete, and keeps the previous one, so the one named is whole and stays for a period.

  Returns:
    A `RunState`.

  Raises:
    ReportError: no checkpoint in model_dir/checkpoints, a run of a policy without θ, or a
      checkpoint that holds no θ or inconsistent shapes.
  """
  checkpoint_dir = run_directory.path(model_dir, run_directory.CHECKPOINTS)
  try:  # read only: the run, perhaps still training, sets damaged checkpoints aside itself
    path, damaged = checkpoints.newest_intact(
        checkpoint_dir, (THETA_KEY, THETA_HISTORY_KEY, OUTER_STEP_KEY, LINEAGE_KEY))
  except checkpoints.DamagedCheckpointError as error:
    raise ReportError(str(error)) from None
  for damaged_path, reason in damaged:
    print(f"Skipped {damaged_path}: unreadable ({reason}).", file=sys.stderr)
  if path is None:
    raise ReportError(
        f"No checkpoint in {checkpoint_dir}. MODEL_DIR must be a run's --model_dir (python -m "
        "ohl_tf.main --model_dir=MODEL_DIR) after at least one outer step, holding "
        "checkpoints/checkpoint and checkpoints/ckpt-N.*.")
  _check_policy_has_theta(model_dir)
  reader = tf.train.load_checkpoint(path)
  keys = reader.get_variable_to_shape_map()
  missing = [key for key in (THETA_KEY, THETA_HISTORY_KEY, OUTER_STEP_KEY) if key not in keys]
  if missing:
    raise ReportError(f"{path} holds no policy: {', '.join(missing)} missing. The report draws "
                      "the θ of --policy=ohl runs; a baseline run (autoaugment, randaugment, "
                      "trivialaugment, cutout, none, file:...) has none.")
  outer_step = int(reader.get_tensor(OUTER_STEP_KEY))
  theta = reader.get_tensor(THETA_KEY).astype(np.float64)
  history = reader.get_tensor(THETA_HISTORY_KEY).astype(np.float64)
  sizes = [space.num_operations for space in augment.SEARCH_SPACES.values()]
  if (theta.ndim != 1 or theta.shape[0] not in sizes or history.ndim != 2 or
      history.shape != (history.shape[0], theta.shape[0]) or history.shape[0] <= outer_step):
    raise ReportError(f"{path}: expected theta [K] (K = {' or '.join(map(str, sizes))}, a search "
                      f"space's operations) and theta_history [T, K] with more than "
                      f"outer_step = {outer_step} rows. Received: theta {theta.shape}, "
                      f"theta_history {history.shape}")
  lineage = (reader.get_tensor(LINEAGE_KEY).astype(np.float64) if LINEAGE_KEY in keys else None)
  return RunState(checkpoint=path, outer_step=outer_step, theta=theta,
                  theta_history=history[:outer_step + 1], lineage=lineage)


def write_png_atomically(path, image):
  """Writes uint8 [H, W, 3] as a PNG beside `path`, then renames: never a half-written file."""
  folder, name = os.path.split(path)
  handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
  try:
    with os.fdopen(handle, "wb") as f:
      f.write(tf.io.encode_png(image).numpy())
    os.replace(temporary, path)
  except BaseException:
    os.unlink(temporary)
    raise


def _operation_name(op, space):
  e1, e2 = divmod(int(op), space.num_elements)
  return f"{summaries.element_label(e1, space)}→{summaries.element_label(e2, space)}"


def summary_line(state, probs):
  """One line: the outer step, the entropy of p_θ and the top operations with their p."""
  space = state.space
  entropy = float(policy.entropy(probs))
  # A stable sort of −p keeps equal probabilities in op-index order (all ties at θ = 0).
  top = np.argsort(-probs, kind="stable")[:TOP_OPERATIONS]
  ops = ", ".join(f"{_operation_name(op, space)} {probs[op] * space.num_operations:.2f}×"
                  for op in top)
  return (f"outer step {state.outer_step}: entropy {entropy:.3f} nats "
          f"({entropy / np.log(space.num_operations):.3f} of uniform); "
          f"top {TOP_OPERATIONS} (p × {space.num_operations}): {ops}")


def figures(state):
  """{file name: uint8 [H, W, 3]} of the figures of `state` (lineage only when recorded, > 0)."""
  probs = policy.operation_probabilities(state.theta).numpy()
  history = policy.element_marginals(policy.operation_probabilities(state.theta_history)).numpy()
  images = {
      "probabilities.png": summaries.probability_figure(
          policy.probability_matrix(probs).numpy(), f"p_θ after outer step {state.outer_step}"),
      "element_marginals.png": summaries.marginals_figure(history),
  }
  if state.lineage is not None and np.sum(state.lineage) > 0:
    lineage = policy_file.lineage_probabilities(state.lineage)
    images["lineage.png"] = summaries.probability_figure(
        policy.probability_matrix(lineage).numpy(),
        f"What the surviving network trained on ({state.lineage.sum():.0f} ops, "
        f"{state.outer_step} outer steps)")
  return images


def report(model_dir, out_dir=None):
  """Writes the run's figures into out_dir (default model_dir/report) and prints what it did.

  Returns:
    The list of paths written.

  Raises:
    ReportError: see `read_run`.
  """
  state = read_run(model_dir)
  out_dir = out_dir or os.path.join(model_dir, "report")
  os.makedirs(out_dir, exist_ok=True)
  images = figures(state)
  written = []
  for name, image in images.items():
    path = os.path.join(out_dir, name)
    write_png_atomically(path, image)
    print(f"Wrote {path}")
    written.append(path)
  if "lineage.png" not in images:
    reason = ("its checkpoints do not record the lineage (an older run)" if state.lineage is None
              else "its lineage counts are all 0 (no OHL operation applied yet)")
    print(f"No lineage.png: {reason}.")
  print(summary_line(state, policy.operation_probabilities(state.theta).numpy()))
  return written


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("Usage: python -m ohl_tf.report MODEL_DIR [--out=DIR]")
  try:
    report(argv[1], _OUT.value)
  except ReportError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
