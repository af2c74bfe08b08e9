"""What tests of whole runs share: `python -m ohl_tf.main` as a user runs it, and its checkpoint.

A test about the command line, a signal or a fresh process runs the trainer in a subprocess here;
one about the search itself runs `search.run` in the test's process instead (faster).

Example:
  >>> result = run_testing.run(tmp_path / "run", "--epochs=1")
  >>> run_testing.assert_same_checkpoint(tmp_path / "run", expected)
"""

from concurrent import futures
import pathlib
import subprocess
import sys

import numpy as np
import tensorflow as tf
import terminal_testing

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A small run on the embedded synthetic data: the quick run's flagfile, made smaller.
SMALL = (f"--flagfile={ROOT / 'flags' / 'quickstart.cfg'}", "--train_subset=256",
         "--batch_size=32", "--trajectories=2", "--val_size=64", "--eval_batch_size=64")


def command(model_dir, *flags, small=True):
  """The argv of `python -m ohl_tf.main` on `model_dir`.

  Args:
    model_dir: the run's --model_dir.
    *flags: more flags; they come after SMALL, so they override it.
    small: start from SMALL (the quick run made smaller); False: the general defaults.

  Returns:
    A list of strings for subprocess.
  """
  return [sys.executable, "-m", "ohl_tf.main", *(SMALL if small else ()),
          f"--model_dir={model_dir}", *flags]


def run(model_dir, *flags, timeout=600, small=True, **env):
  """Runs `command(model_dir, *flags)` to its end, as a user does, and returns its result.

  Without the TF_CPP_MIN_LOG_LEVEL of conftest.py: the terminal shows what a user's shows.

  Args:
    model_dir: the run's --model_dir.
    *flags: more flags (see `command`).
    timeout: seconds before subprocess gives up (and raises TimeoutExpired).
    small: as in `command`.
    **env: environment variables to set for the run.

  Returns:
    The subprocess.CompletedProcess, stdout and stderr as text.
  """
  return subprocess.run(command(model_dir, *flags, small=small), cwd=ROOT,
                        env=terminal_testing.environment(**env), capture_output=True, text=True,
                        timeout=timeout, check=False)


def run_side_by_side(runs, timeout=600, small=True):
  """Runs several independent `run`s at the same time and returns their results in order.

  A small run spends most of its time in TensorFlow's import and tracing, on one core: two side
  by side on 2 cores take little longer than one. Only for runs that share no model_dir.

  Args:
    runs: a sequence of (model_dir, flags) or (model_dir, flags, env): flags a sequence of
      strings (see `command`), env a dict of environment variables to set (see `run`).
    timeout: seconds before each run's subprocess gives up (and raises TimeoutExpired).
    small: as in `command`.

  Returns:
    A list of subprocess.CompletedProcess, one per run, in the order of `runs`.
  """
  with futures.ThreadPoolExecutor(len(runs)) as pool:
    return list(pool.map(lambda r: run(r[0], *r[1], timeout=timeout, small=small,
                                       **(r[2] if len(r) > 2 else {})), runs))


def final_checkpoint(model_dir):
  """{name: value} of the latest checkpoint of a run: all but its wall time.

  The wall time differs between two runs of the same computation; everything else (θ and its
  optimizer, every trajectory's weights and slots, the step counters) must not.
  """
  reader = tf.train.load_checkpoint(str(pathlib.Path(model_dir) / "checkpoints"))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if "wall_time" not in name and not name.startswith("_CHECKPOINTABLE")}


def assert_same_checkpoint(model_dir, expected):
  """Asserts the latest checkpoint of `model_dir` holds `expected` (a `final_checkpoint`) bit
  for bit: the same names, every value equal."""
  actual = final_checkpoint(model_dir)
  assert expected.keys() == actual.keys()
  for name in expected:
    np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
