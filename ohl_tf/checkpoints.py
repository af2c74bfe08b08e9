"""A run's `checkpoints/`: damaged checkpoints set aside on resume, failed saves cleaned up.

The search saves through a `tf.train.CheckpointManager` (`ckpt-<t>` after outer step t, its
`checkpoint` state file naming the newest and the ones kept). Two faults are handled here:

  * A checkpoint that cannot be read fully (a truncated or deleted data file, a damaged or deleted
    index, a checksum that does not match) is found on resume (`recover`): every checkpoint newer
    than the newest intact one is reported in one line and moved into `checkpoints/damaged/`, and
    the state file is rewritten without it, so neither this run nor the manager picks it again.
    With no intact checkpoint nothing is moved and `DamagedCheckpointError` says what to do.
  * A write that fails while saving (a full disk, a quota, a file size limit) leaves no
    `ckpt-<t>_temp/` (where TensorFlow writes before it renames) and no part of `ckpt-<t>`
    (`save`); `WriteFailedError` names the path and the cause, and rerunning the same command
    resumes from the previous checkpoint.
"""

import glob
import os
import re
import shutil
import time

from absl import logging
import tensorflow as tf

from ohl_tf import private_api

DAMAGED = "damaged"  # the folder of checkpoints/ where unreadable checkpoints are set aside
# The files of checkpoint `ckpt-<t>`: its index and its data shards (not `ckpt-<t>_temp/`).
_FILE = re.compile(r"^ckpt-(\d+)\.(?:index|data-\d+-of-\d+)$")
# A TensorFlow error message: "{{function_node ...}} <what>; <cause> [Op:SaveV2]".
_TF_MESSAGE = re.compile(r"^(?:\{\{[^}]*\}\}\s*)?(.*?)(?:\s*\[Op:\w+\])?$")


# The TensorFlow errors that a failed file write raises: a full disk is ResourceExhausted, a file
# size limit (EFBIG) OutOfRange, permissions PermissionDenied; the others for what remains.
_TF_WRITE_ERRORS = (tf.errors.ResourceExhaustedError, tf.errors.OutOfRangeError,
                    tf.errors.PermissionDeniedError, tf.errors.UnknownError,
                    tf.errors.FailedPreconditionError, tf.errors.DataLossError,
                    tf.errors.InternalError, tf.errors.AbortedError)


class DamagedCheckpointError(ValueError):
  """No checkpoint of a run directory can be read."""


class WriteFailedError(OSError):
  """A write into the run directory failed (full disk, quota, file size limit, ...)."""


def cause(error):
  """The one-line reason of an I/O or TensorFlow error, without TensorFlow's decorations.

  "{{function_node ...}} /run/ckpt-3_temp/part-0...; No space left on device [Op:SaveV2]" gives
  "No space left on device"; an `OSError` gives its strerror.
  """
  if isinstance(error, OSError) and error.strerror:
    return error.strerror
  message = error.message if isinstance(error, tf.errors.OpError) else str(error)
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  text = _TF_MESSAGE.match(lines[0]).group(1) if lines else type(error).__name__
  return text.rsplit("; ", 1)[-1][:300]


# ---------------------------------------------------------------------------------------------
# Reading: which checkpoints there are, which are intact.
# ---------------------------------------------------------------------------------------------

def numbers(directory):
  """The t of every checkpoint `ckpt-<t>` with a file in `directory`, newest first."""
  if not os.path.isdir(directory):
    return []
  found = {int(match.group(1)) for match in map(_FILE.match, os.listdir(directory)) if match}
  return sorted(found, reverse=True)


def problem(path, keys=None):
  """What makes checkpoint `path` (a prefix, ".../ckpt-3") unreadable, in one line; None when
  its index and every tensor read (TensorFlow checks each tensor's checksum as it reads), or
  only those of `keys` that it holds."""
  try:
    reader = tf.train.load_checkpoint(path)
    held = reader.get_variable_to_shape_map()
    for name in held if keys is None else [key for key in keys if key in held]:
      reader.get_tensor(name)
  # A truncated data file raises IndexError ("Read less bytes than requested").
  except (tf.errors.OpError, IndexError, ValueError, OSError) as error:
    return cause(error)
  return None


def newest_intact(directory, keys=None):
  """The newest intact checkpoint of `directory` and the newer damaged ones, reading only.

  Older checkpoints are not read: the newest intact one is enough.

  Args:
    directory: a `tf.train.CheckpointManager` directory (`<model_dir>/checkpoints`).
    keys: the tensors a reader needs (e.g. the report's θ, not every network's weights), or
      None for every tensor.

  Returns:
    (path, damaged): the intact checkpoint's path (prefix), or None when `directory` holds no
    checkpoint; and [(path, reason)] of every newer checkpoint, newest first.

  Raises:
    DamagedCheckpointError: there are checkpoints but none is intact.
  """
  damaged = []
  for number in numbers(directory):
    path = os.path.join(directory, f"ckpt-{number}")
    reason = problem(path, keys)
    if reason is None:
      return path, damaged
    damaged.append((path, reason))
  if not damaged:
    return None, []
  details = "; ".join(f"{os.path.basename(p)}: {r}" for p, r in damaged)
  raise DamagedCheckpointError(
      f"No intact checkpoint in {directory} ({details}). Rerun with --overwrite to start the "
      f"run afresh, or put back an intact copy of {directory}.")


def recover(directory):
  """The newest intact checkpoint of `directory`, after setting aside every newer one.

  Each damaged checkpoint is reported (a warning naming it and what is wrong), its files moved
  into `directory/damaged/`, and the manager's state file rewritten to name the intact ones left,
  the chosen one as the latest.

  Args:
    directory: a `tf.train.CheckpointManager` directory (`<model_dir>/checkpoints`).

  Returns:
    The intact checkpoint's path (prefix), or None when `directory` holds no checkpoint.

  Raises:
    DamagedCheckpointError: there are checkpoints but none is intact (nothing is moved).
  """
  path, damaged = newest_intact(directory)
  if path is None:
    return None
  for damaged_path, reason in damaged:
    destination = set_aside(damaged_path)
    logging.warning("Checkpoint %s is damaged (%s): moved to %s; resuming from %s.",
                    damaged_path, reason, destination, path)
  kept = [os.path.join(directory, f"ckpt-{number}")
          for number in reversed(numbers(directory))]  # the damaged ones are gone
  _record(directory, kept)
  return path


def set_aside(path):
  """Moves the files of checkpoint `path` into `damaged/` beside it; returns their new prefix
  (`damaged/ckpt-3`, or `damaged/ckpt-3.1`, ... when an earlier one of that name is there)."""
  folder = os.path.join(os.path.dirname(path), DAMAGED)
  os.makedirs(folder, exist_ok=True)
  name, suffix = os.path.basename(path), 0
  target = os.path.join(folder, name)
  while glob.glob(glob.escape(target) + ".*"):
    suffix += 1
    target = os.path.join(folder, f"{name}.{suffix}")
  for file in glob.glob(glob.escape(path) + ".*"):
    os.rename(file, target + file[len(path):])
  return target


def _record(directory, paths):
  """Writes the manager's state file: `paths` (oldest first) kept, the last one the latest,
  unless it already says so."""
  state = tf.train.get_checkpoint_state(directory)  # None if unreadable
  wanted = [os.path.basename(p) for p in paths]
  if state is not None and (
      os.path.basename(state.model_checkpoint_path) == wanted[-1] and
      [os.path.basename(p) for p in state.all_model_checkpoint_paths] == wanted):
    return
  timestamps = [_written_at(p) for p in paths]
  # The manager deletes (beyond max_to_keep) only checkpoints written after this time: before
  # all of them, or the ones named here would be kept forever.
  private_api.update_checkpoint_state(directory, paths, timestamps, min(timestamps) - 1)


def _written_at(path):
  files = glob.glob(glob.escape(path) + ".*")
  return max(os.path.getmtime(f) for f in files) if files else time.time()


# ---------------------------------------------------------------------------------------------
# Writing.
# ---------------------------------------------------------------------------------------------

def save(manager, number):
  """`manager.save(checkpoint_number=number)`; a failed write leaves nothing of `ckpt-<number>`.

  Args:
    manager: the run's `tf.train.CheckpointManager`.
    number: the checkpoint's number, the outer step just completed.

  Raises:
    WriteFailedError: the write failed; `ckpt-<number>_temp/` and any file of `ckpt-<number>`
      that the state file does not name are removed, the previous checkpoints kept.
  """
  try:
    manager.save(checkpoint_number=number)
  except (tf.errors.OpError, OSError) as error:
    path = os.path.join(manager.directory, f"ckpt-{number}")
    discard_failed_save(manager.directory, number)
    raise write_failure(path, error, f"resumes from outer step {number - 1}") from None


def write_failure(path, error, rerun):
  """The `WriteFailedError` of a failed write of `path`, one line: the path, the cause, and what
  rerunning the same command does (`rerun`, e.g. "resumes from outer step 2")."""
  return WriteFailedError(f"Could not write {path}: {cause(error)}. Nothing half-written is "
                          f"left; rerunning the same command {rerun}.")


def failed_write(error, directory):
  """The file under `directory` that `error` (an OSError or a TensorFlow I/O error) failed to
  write, or None when the error names none (it is not a write failure there)."""
  if isinstance(error, OSError):
    path = error.filename
  elif isinstance(error, _TF_WRITE_ERRORS) and error.message.strip():
    path = _TF_MESSAGE.match(error.message.strip().splitlines()[0]).group(1).rsplit("; ", 1)[0]
  else:
    return None
  if not isinstance(path, str):
    return None
  # A TensorFlow message's first line is a path only if it reads as one, as written: abspath
  # would turn any relative text (e.g. "Error in user-defined function") into a path inside.
  if isinstance(error, tf.errors.OpError) and not (
      path.startswith(directory.rstrip(os.sep) + os.sep) or os.path.isabs(path)):
    return None
  inside = os.path.abspath(path).startswith(os.path.abspath(directory) + os.sep)
  return path if inside else None


def discard_failed_save(directory, number):
  """Removes what a failed save of `ckpt-<number>` left: TensorFlow's `ckpt-<number>_temp/`,
  the state file's temporary copies and, unless the state file names it, `ckpt-<number>`."""
  path = os.path.join(directory, f"ckpt-{number}")
  shutil.rmtree(path + "_temp", ignore_errors=True)
  for temporary in glob.glob(os.path.join(glob.escape(directory), "checkpoint.tmp*")):
    os.remove(temporary)
  state = tf.train.get_checkpoint_state(directory)  # None if unreadable
  if state is None or os.path.basename(state.model_checkpoint_path) != os.path.basename(path):
    for file in glob.glob(glob.escape(path) + ".*"):
      os.remove(file)
