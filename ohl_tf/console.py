"""What a run prints: its configuration, one line per outer step, its results; not TF's logs.

TensorFlow's C++ libraries log as they load and as they find the devices: oneDNN notices, CUDA
probing (and, on a machine without a GPU, an ERROR that cuInit failed), the CPU feature guard.
TF_CPP_MIN_LOG_LEVEL silences most of these, but only if it is in the environment before the
libraries load, and on TF 2.21 not even then for the lines logged before absl::InitializeLog
(`port.cc` and `cudart_stub.cc`, printed once by `_pywrap_tensorflow_internal` and again by
`_pywrap_profiler_plugin`, each with its own copy of absl): those go to file descriptor 2
whatever the variable says. So `silence_tensorflow` must run before anything imports
TensorFlow (keras, tensorflow_datasets and most of ohl_tf do), which is why `ohl_tf.main` calls it
first and why `ohl_tf/__init__.py` loads its Keras layer lazily:

  1. it sets TF_CPP_MIN_LOG_LEVEL=3 (FATAL only) unless the user set the variable or asked for
     --verbosity >= 1. Level 2 would keep the cuInit ERROR of every CPU-only run; TF's genuine
     errors still reach the user as Python exceptions;
  2. it imports TensorFlow with file descriptor 2 sent to a temporary file, then restores it
     and writes back everything that is not a C++ log record below that level: a Python warning
     or an error printed while TensorFlow loads still reaches stderr, after the load.

Python's side is absl logging, which `absl.app.run` raises to INFO, so TensorFlow's own Python
INFO lines (MirroredStrategy, SavedModel and checkpoint notices) would fill the terminal too:
`show_terminal` keeps absl at WARNING unless --verbosity was given, and sends the lines of
`TERMINAL` (the summary and the outer steps, formatted by the pure functions below) to stdout,
next to the results line. A library user of `ohl_tf.search` gets them as ordinary INFO logs.

Getting TF's logs back: --verbosity=1 (or -v 1) shows everything, C++ and Python (DEBUG);
--verbosity=0 shows absl's INFO lines (ours and TensorFlow's Python ones) without the C++
ones; TF_CPP_MIN_LOG_LEVEL=0..3 in the environment sets the C++ level on its own.
"""

import contextlib
import logging as std_logging
import os
import re
import sys
import tempfile

from absl import flags
from absl import logging

# The lines of the summary and of every outer step (stdout under `show_terminal`).
TERMINAL = std_logging.getLogger("ohl_tf.terminal")

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# FATAL only: TensorFlow's C++ INFO, WARNING and ERROR lines are off in a quiet run.
QUIET_LEVEL = "3"
# A C++ log record in absl's format, "I0000 00:00:1796045341.024634   21097 port.cc:153] ...":
# its severity letter (TF_CPP_MIN_LOG_LEVEL counts them in this order), month, day and time.
_SEVERITIES = "IWEF"
_NATIVE_RECORD = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d")
# What absl prints once per library before its first record, whatever the level.
_PREINIT_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written"

# --verbosity as parsed from the command line by `silence_tensorflow` (None: not given).
_requested = {"verbosity": None}


# ---------------------------------------------------------------------------------------------
# Before TensorFlow loads.
# ---------------------------------------------------------------------------------------------

def requested_verbosity(argv):
  """absl's --verbosity (-v) in `argv` and its --flagfile files; None when it is not given.

  Parsed here, before `absl.app.run` parses the flags, because TensorFlow's C++ logging level is
  fixed when TensorFlow loads. Anything this parser cannot read is left to app.run to report.
  """
  parser = flags.FlagValues()
  flags.DEFINE_integer("verbosity", None, "absl's --verbosity.", short_name="v",
                       flag_values=parser)
  try:
    parser(list(argv), known_only=True)
  except (flags.Error, ValueError, OSError):
    return None
  return parser.verbosity


def native_level_to_set(environ, verbosity):
  """The TF_CPP_MIN_LOG_LEVEL a run sets: none if the user chose one or asked for the logs."""
  if LEVEL_VARIABLE in environ or (verbosity is not None and verbosity >= 1):
    return None
  return QUIET_LEVEL


def native_level(environ):
  """TensorFlow's C++ logging level in `environ` (0, TF's default, if unset or not a number)."""
  try:
    return min(max(int(environ.get(LEVEL_VARIABLE, "0")), 0), len(_SEVERITIES) - 1)
  except ValueError:
    return 0


def drop_native_records(text, min_level):
  """`text` without absl's pre-init banner and the C++ log records below `min_level`.

  Every other line is kept, including a record's continuation lines (absl's pre-init records
  are one line each): a line that is not certainly TF's chatter must reach the user.
  """
  kept = []
  for line in text.splitlines(keepends=True):
    record = _NATIVE_RECORD.match(line)
    if line.startswith(_PREINIT_BANNER) or (
        record and _SEVERITIES.index(record.group(1)) < min_level):
      continue
    kept.append(line)
  return "".join(kept)


@contextlib.contextmanager
def native_stderr_filtered(min_level):
  """Within the block, file descriptor 2 (C++ and Python writes alike) goes to a temporary file;
  after it, even if it raises, what `drop_native_records` keeps is written to `sys.stderr`."""
  sys.stderr.flush()
  try:
    saved = os.dup(2)
  except OSError:  # no stderr to protect
    yield
    return
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      sys.stderr.write(drop_native_records(captured.read().decode(errors="replace"),
                                           min_level))
      sys.stderr.flush()


def silence_tensorflow(argv=None, environ=None):
  """Loads TensorFlow with its C++ logs at the level the command line asks for (module doc).

  Call it before anything imports TensorFlow; afterwards it only records --verbosity.

  Args:
    argv: the command line (default `sys.argv`).
    environ: the environment to set TF_CPP_MIN_LOG_LEVEL in (default `os.environ`).
  """
  argv = sys.argv if argv is None else argv
  environ = os.environ if environ is None else environ
  _requested["verbosity"] = requested_verbosity(argv)
  level = native_level_to_set(environ, _requested["verbosity"])
  if level is not None:
    environ[LEVEL_VARIABLE] = level
  min_level = native_level(environ)
  if min_level == 0 or "tensorflow" in sys.modules:  # every line wanted, or too late
    return
  with native_stderr_filtered(min_level):
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import,import-outside-toplevel


# ---------------------------------------------------------------------------------------------
# After the flags are parsed.
# ---------------------------------------------------------------------------------------------

def show_terminal(stream=None):
  """Sends `TERMINAL`'s lines to `stream` (stdout) bare, and keeps absl's Python logging at
  WARNING unless --verbosity was given (absl.app.run raises it to INFO)."""
  if _requested["verbosity"] is None:
    logging.set_verbosity(logging.WARNING)
  handler = std_logging.StreamHandler(sys.stdout if stream is None else stream)
  handler.setFormatter(std_logging.Formatter("%(message)s"))
  TERMINAL.handlers[:] = [handler]
  TERMINAL.setLevel(std_logging.INFO)
  TERMINAL.propagate = False  # not a second time through absl's handler


# ---------------------------------------------------------------------------------------------
# The lines (pure).
# ---------------------------------------------------------------------------------------------

def format_duration(seconds):
  """h:mm:ss, hours unbounded (a day and a half is 36:00:00)."""
  seconds = max(int(round(seconds)), 0)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def format_outer_step(step, num_steps, train_step, total_train_steps, images_per_second,
                      val_accuracies, best, eta_seconds):
  """The one line of outer step `step` (1-based) of `num_steps`.

  Args:
    step, num_steps: the outer step just done and how many the run has (K).
    train_step, total_train_steps: the inner steps done so far, and in all.
    images_per_second: training throughput of the period, all trajectories together.
    val_accuracies: validation accuracy of each trajectory, in order.
    best: n*, the trajectory copied to every other.
    eta_seconds: estimated time to the last outer step.
  """
  accuracies = " ".join(f"{a:.3f}" for a in val_accuracies)
  return (f"outer step {step}/{num_steps} (step {train_step}/{total_train_steps}): "
          f"{images_per_second:.0f} images/s, val accuracy [{accuracies}], best {best}, "
          f"ETA {format_duration(eta_seconds)}")


def _device_names(trajectory_devices):
  """"CPU:0 | CPU:0" for two trajectories on one CPU; a trajectory's replicas joined by ","."""
  short = lambda name: name.rsplit("device:", 1)[-1]
  return " | ".join(",".join(short(d) for d in group) for group in trajectory_devices)


def format_summary(config, *, resuming, schedule, trajectory_devices, estimator,
                   cluster=None, data_description=""):
  """The few lines a run starts with: what it trains, how it searches, where it lives.

  Args:
    config: the run's `run_config.Config`.
    resuming: whether `config.model_dir` holds this run's checkpoints.
    schedule: its `schedule.Schedule`.
    trajectory_devices: one list of device names per trajectory.
    estimator: how θ learns, as the terminal names it (`estimators.Estimator.description`),
      or None when the policy's θ does not learn.
    cluster: this worker's `cluster.Cluster`, or None or `cluster.Local` for one process.
    data_description: what the data line adds (the dataset's `description`, e.g. where a
      folder's test split came from), or "".
  """
  reward = "validation accuracy" if config.reward == "accuracy" else "validation loss"
  if estimator is not None:
    # The paper's space goes unsaid; another is named, as it changes what θ means.
    space = "" if config.search_space == "paper" else f" in {config.search_space}"
    policy = (f"{config.policy}{space}: θ learned by {estimator}, Adam lr "
              f"{config.theta_lr:g}; n* by {reward}")
  else:
    policy = f"{config.policy} (fixed); n* by {reward}"
  inner = (f"I={_count(config.inner_steps, 'step')}" if config.inner_steps else
           "I=1 epoch")
  if cluster is not None and cluster.distributed:
    local = cluster.local_trajectories(config.trajectories)
    where = (f"  search    N={config.trajectories} on {cluster.num_workers} workers; worker "
             f"{cluster.index}{' (chief)' if cluster.is_chief else ''} has trajectories "
             f"{local[0]}-{local[-1]} on {_device_names(trajectory_devices)}")
  else:
    where = f"  search    N={config.trajectories} on {_device_names(trajectory_devices)}"
  return "\n".join([
      f"{'Resuming the run in' if resuming else 'New run in'} {config.model_dir}",
      f"  data      {config.dataset}: {schedule.num_examples} training images, "
      f"{config.val_size} validation{'; ' + data_description if data_description else ''}",
      f"  model     {config.model}, batch {config.batch_size}, lr {config.lr:g}"
      f"{_arithmetic(config)}",
      f"  policy    {policy}",
      f"  schedule  {_count(config.epochs, 'epoch')} of {_count(schedule.steps_per_epoch, 'step')}"
      f", {inner}: {_count(schedule.num_periods, 'outer step')}",
      where,
  ])


def _arithmetic(config):
  """", mixed_bfloat16, XLA" for what differs from the default float32 without XLA."""
  shown = ([config.precision] if config.precision != "float32" else []) + (
      ["XLA"] if config.jit_compile else [])
  return "".join(f", {item}" for item in shown)


def _count(number, noun):
  """"1 epoch", "2 epochs"."""
  return f"{number} {noun}{'' if number == 1 else 's'}"
