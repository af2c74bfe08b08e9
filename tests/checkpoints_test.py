"""A run's checkpoints (ohl_tf.checkpoints): damaged ones set aside, failed saves cleaned up."""

import contextlib
import os
import resource
import signal

import numpy as np
import pytest
import tensorflow as tf

from ohl_tf import checkpoints
from ohl_tf import export


def _damage_data(path):
  data = path + ".data-00000-of-00001"
  os.truncate(data, os.path.getsize(data) // 2)


def _delete_data(path):
  os.remove(path + ".data-00000-of-00001")


def _flip_a_data_byte(path):
  data = path + ".data-00000-of-00001"
  content = bytearray(open(data, "rb").read())
  content[len(content) // 2] ^= 0xFF
  open(data, "wb").write(bytes(content))


def _damage_index(path):
  index = path + ".index"
  content = bytearray(open(index, "rb").read())
  content[len(content) // 2] ^= 0xFF
  open(index, "wb").write(bytes(content))


def _delete_index(path):
  os.remove(path + ".index")


_DAMAGES = {"truncated data": (_damage_data, "Read less bytes than requested"),
            "deleted data": (_delete_data, "No such file or directory"),
            "a flipped data byte": (_flip_a_data_byte, "Checksum does not match"),
            "damaged index": (_damage_index, "checksum mismatch"),
            "deleted index": (_delete_index, "Failed to find any matching files")}


def _saved_run(directory, count=3):
  """A manager's directory with checkpoints 1..count of a variable holding its number."""
  value = tf.Variable(tf.zeros([4096]))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(value=value), directory, max_to_keep=2)
  for number in range(1, count + 1):
    value.assign(tf.fill([4096], float(number)))
    manager.save(checkpoint_number=number)
  return manager


def _restored_value(path):
  return tf.train.load_checkpoint(path).get_tensor("value/.ATTRIBUTES/VARIABLE_VALUE")


@pytest.mark.parametrize("damage", sorted(_DAMAGES))
def test_a_damaged_newest_checkpoint_is_set_aside_and_the_previous_one_chosen(
    tmp_path, damage, caplog):
  directory = str(tmp_path / "checkpoints")
  _saved_run(directory)
  damage_fn, reason = _DAMAGES[damage]
  damage_fn(os.path.join(directory, "ckpt-3"))
  before = sorted(os.listdir(tmp_path))

  path = checkpoints.recover(directory)
  assert path == os.path.join(directory, "ckpt-2")
  np.testing.assert_array_equal(_restored_value(path), 2.0)
  # Reported in one line naming the file and what is wrong.
  warnings = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
  assert len(warnings) == 1 and "ckpt-3" in warnings[0] and reason in warnings[0], warnings
  assert "\n" not in warnings[0]
  # Its files are in damaged/, and the state file no longer names it: the manager picks ckpt-2.
  assert sorted(os.listdir(os.path.join(directory, "damaged")))
  assert all(name.startswith("ckpt-3.") for name in os.listdir(os.path.join(directory, "damaged")))
  assert not [n for n in os.listdir(directory) if n.startswith("ckpt-3")]
  state = tf.train.get_checkpoint_state(directory)
  assert state.model_checkpoint_path == path
  assert list(state.all_model_checkpoint_paths) == [path]
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(value=tf.Variable(tf.zeros([4096]))),
                                       directory, max_to_keep=2)
  assert manager.latest_checkpoint == path
  assert sorted(os.listdir(tmp_path)) == before  # nothing outside checkpoints/ touched
  assert checkpoints.recover(directory) == path  # and nothing more to do the next time
  # The manager still keeps only the last two: ckpt-2 goes when ckpt-4 is written.
  manager.save(checkpoint_number=3)
  manager.save(checkpoint_number=4)
  assert sorted(n for n in os.listdir(directory) if n.endswith(".index")) == [
      "ckpt-3.index", "ckpt-4.index"]


def test_a_complete_checkpoint_the_state_file_missed_is_used(tmp_path):
  # Killed between writing ckpt-3 and recording it: it is whole, so the run resumes from it.
  directory = str(tmp_path / "checkpoints")
  manager = _saved_run(directory)
  tf.compat.v1.train.update_checkpoint_state(
      directory, os.path.join(directory, "ckpt-2"),
      [os.path.join(directory, "ckpt-2")])
  assert checkpoints.recover(directory) == manager.latest_checkpoint
  assert tf.train.get_checkpoint_state(directory).model_checkpoint_path == (
      manager.latest_checkpoint)


def test_without_an_intact_checkpoint_nothing_moves_and_the_error_says_what_to_do(tmp_path):
  directory = str(tmp_path / "checkpoints")
  _saved_run(directory, count=2)
  _damage_data(os.path.join(directory, "ckpt-2"))
  _delete_index(os.path.join(directory, "ckpt-1"))
  listing = sorted(os.listdir(directory))
  with pytest.raises(checkpoints.DamagedCheckpointError) as raised:
    checkpoints.recover(directory)
  message = str(raised.value)
  assert "\n" not in message
  assert f"No intact checkpoint in {directory}" in message
  assert "ckpt-2: Read less bytes than requested" in message
  assert "--overwrite" in message
  assert sorted(os.listdir(directory)) == listing


def test_no_checkpoint_is_not_an_error(tmp_path):
  assert checkpoints.recover(str(tmp_path / "checkpoints")) is None
  (tmp_path / "checkpoints").mkdir()
  assert checkpoints.recover(str(tmp_path / "checkpoints")) is None


def test_a_second_damaged_checkpoint_of_the_same_number_does_not_overwrite_the_first(tmp_path):
  directory = str(tmp_path / "checkpoints")
  manager = _saved_run(directory)
  _damage_data(os.path.join(directory, "ckpt-3"))
  checkpoints.recover(directory)
  manager = tf.train.CheckpointManager(manager.checkpoint, directory, max_to_keep=2)
  manager.save(checkpoint_number=3)
  _delete_data(os.path.join(directory, "ckpt-3"))
  checkpoints.recover(directory)
  assert sorted(os.listdir(os.path.join(directory, "damaged"))) == [
      "ckpt-3.1.index", "ckpt-3.data-00000-of-00001", "ckpt-3.index"]


def test_cause_strips_tensorflows_decorations():
  error = tf.errors.ResourceExhaustedError(
      None, None, "{{function_node __wrapped__SaveV2_dtypes_3_device_/job:localhost/replica:0/"
      "task:0/device:CPU:0}} /run/checkpoints/ckpt-3_temp/part-00000-of-00001.data-00000-of-"
      "00001.tempstate1; No space left on device [Op:SaveV2]")
  assert checkpoints.cause(error) == "No space left on device"
  assert checkpoints.failed_write(error, "/run") == (
      "/run/checkpoints/ckpt-3_temp/part-00000-of-00001.data-00000-of-00001.tempstate1")
  assert checkpoints.failed_write(error, "/elsewhere") is None
  too_large = tf.errors.OutOfRangeError(  # what SaveV2 raises past a file size limit (EFBIG)
      None, None, "{{function_node __wrapped__SaveV2}} /run/.saved_model.tmp-a0/saved_model/"
      "variables/variables_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; File too "
      "large [Op:SaveV2]")
  assert checkpoints.failed_write(too_large, "/run") == (
      "/run/.saved_model.tmp-a0/saved_model/variables/variables_temp/part-00000-of-00001.data-"
      "00000-of-00001.tempstate1")
  assert checkpoints.cause(too_large) == "File too large"
  assert checkpoints.cause(OSError(28, "No space left on device", "/run/x")) == (
      "No space left on device")


def test_an_error_that_names_no_written_file_is_not_a_write_failure(tmp_path, monkeypatch):
  # A data error's first line is no path, even with the run directory as the working directory.
  monkeypatch.chdir(tmp_path)
  error = tf.errors.InvalidArgumentError(
      None, None, "Error in user-defined function passed to ParallelMapDatasetV2: assertion "
      "failed: [Images differ in size]")
  assert checkpoints.failed_write(error, str(tmp_path)) is None
  assert checkpoints.failed_write(error, ".") is None
  assert checkpoints.failed_write(tf.errors.UnknownError(None, None, ""), ".") is None


def test_a_failed_json_write_names_its_file_and_leaves_no_temporary(tmp_path, file_size_limit):
  path = tmp_path / "results.json"
  with file_size_limit(4096), pytest.raises(OSError) as raised:
    export.write_json(str(path), {"values": list(range(5000))})
  assert raised.value.filename == str(path)
  assert checkpoints.failed_write(raised.value, str(tmp_path)) == str(path)
  assert os.listdir(tmp_path) == []


@pytest.fixture
def file_size_limit():
  """A context manager that lowers this process's file size limit (writes beyond it fail with
  EFBIG) within its block only: pytest writes its report to a file that may be past the limit."""
  if not hasattr(resource, "RLIMIT_FSIZE"):
    pytest.skip("no RLIMIT_FSIZE on this platform")

  @contextlib.contextmanager
  def limit(size):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails, not the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
      yield
    finally:
      resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
      signal.signal(signal.SIGXFSZ, handler)

  return limit


def test_a_failed_save_leaves_nothing_and_keeps_the_previous_checkpoints(tmp_path,
                                                                         file_size_limit):
  directory = str(tmp_path / "checkpoints")
  manager = _saved_run(directory, count=2)
  listing = sorted(os.listdir(directory))
  with file_size_limit(4096), pytest.raises(checkpoints.WriteFailedError) as raised:
    checkpoints.save(manager, 3)  # the 16 KB data file cannot be written
  assert str(raised.value) == (
      f"Could not write {directory}/ckpt-3: File too large. Nothing half-written is left; "
      "rerunning the same command resumes from outer step 2.")
  assert sorted(os.listdir(directory)) == listing  # no ckpt-3_temp/, no ckpt-3
  assert checkpoints.recover(directory) == os.path.join(directory, "ckpt-2")


def test_a_damaged_state_file_is_rewritten_from_the_checkpoints_on_disk(tmp_path):
  directory = str(tmp_path / "checkpoints")
  manager = _saved_run(directory)
  with open(os.path.join(directory, "checkpoint"), "w") as state:
    state.write("model_checkpoint_path: \x00\x01 garbage {")
  assert checkpoints.recover(directory) == manager.latest_checkpoint
  state = tf.train.get_checkpoint_state(directory)
  assert state.model_checkpoint_path == manager.latest_checkpoint
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-3"]
