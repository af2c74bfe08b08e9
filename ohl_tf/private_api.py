"""Every private TensorFlow (and Keras) symbol the project uses, each behind one function.

TensorFlow 2.21 and Keras 3.15 are pinned (requirements.txt); the symbols below are not part of
their public API and may move or go in an upgrade. Each is reached through `_resolve` and used by
one function here, whose comment says why the public API does not do: a removed symbol then fails
with an error naming it and its user, and `tests/private_api_test.py` resolves every one of
`SYMBOLS` (and checks the arguments passed to it) so that an upgrade fails the test suite first.

Users: `ohl_tf.operations` (the unlowered Case of the per-image path), `ohl_tf.cluster` (the
coordination service, collectives between workers, the watchdog's health check, barriers),
`ohl_tf.checkpoints` (the manager's state file) and `ohl_tf.export` (the asset on the exported
object).
"""

import dataclasses
import importlib

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Symbol:
  """A private symbol: `module`.`attribute` (a dotted path for a method of a class).

  Attributes:
    module: the module that defines it, e.g. "tensorflow.python.ops.collective_ops".
    attribute: its name in the module, e.g. "all_gather_v2" or "Context.wait_at_barrier".
    arguments: the keyword arguments this module passes to it (checked by the test).
    user: the project's function that needs it, for the error message.
    instance: the last part of `attribute` is set on each instance (in `__init__`), not on the
      class: it is looked up on an object (`_resolve`'s `instance`).
  """
  module: str
  attribute: str
  arguments: tuple = ()
  user: str = ""
  instance: bool = False

  @property
  def name(self):
    return f"{self.module}.{self.attribute}"


SYMBOLS = {
    "indexed_case": Symbol(
        "tensorflow.python.ops.control_flow_switch_case", "_indexed_case_helper",
        ("branch_fns", "default", "branch_index", "name", "lower_using_switch_merge"),
        "operations (the per-image path)"),
    "context": Symbol("tensorflow.python.eager.context", "context", (), "cluster"),
    "configure_coordination_service": Symbol(
        "tensorflow.python.eager.context", "Context.configure_coordination_service",
        ("service_type", "service_leader", "heartbeat_timeout_in_ms",
         "cluster_register_timeout_in_ms", "coordinated_jobs"), "cluster.Cluster"),
    "coordinated_job": Symbol(
        "tensorflow.compiler.xla.tsl.protobuf.coordination_config_pb2", "CoordinatedJob", (),
        "cluster.Cluster"),
    "check_collective_ops_peer_health": Symbol(
        "tensorflow.python.eager.context", "Context.check_collective_ops_peer_health",
        ("task", "timeout_in_ms"), "cluster.Cluster's watchdog"),
    "wait_at_barrier": Symbol(
        "tensorflow.python.eager.context", "Context.wait_at_barrier",
        ("barrier_id", "timeout_in_ms"), "cluster.Cluster.barrier"),
    "all_gather": Symbol(
        "tensorflow.python.ops.collective_ops", "all_gather_v2",
        ("t", "group_size", "group_key", "instance_key", "timeout"), "cluster.Cluster.gather"),
    "broadcast_send": Symbol(
        "tensorflow.python.ops.collective_ops", "broadcast_send",
        ("t", "shape", "dtype", "group_size", "group_key", "instance_key", "timeout"),
        "cluster.Cluster.broadcast"),
    "broadcast_recv": Symbol(
        "tensorflow.python.ops.collective_ops", "broadcast_recv",
        ("shape", "dtype", "group_size", "group_key", "instance_key", "timeout"),
        "cluster.Cluster.broadcast"),
    "update_checkpoint_state": Symbol(
        "tensorflow.python.checkpoint.checkpoint_management", "update_checkpoint_state_internal",
        ("save_dir", "model_checkpoint_path", "all_model_checkpoint_paths",
         "all_model_checkpoint_timestamps", "last_preserved_timestamp", "save_relative_paths"),
        "checkpoints"),
    "export_archive_trackable": Symbol("keras.export", "ExportArchive._tf_trackable", (),
                                       "export", instance=True),
}


class PrivateApiError(ImportError):
  """A private TensorFlow or Keras symbol the project uses is gone (an upgrade moved it)."""


# A lookup, not graph code: called while a map function is traced, autograph would otherwise try
# to convert importlib's internals (and warn that it cannot).
@tf.autograph.experimental.do_not_convert
def _resolve(key, instance=None):
  """The object of `SYMBOLS[key]`, or a `PrivateApiError` naming it and what needs it.

  Args:
    key: a key of `SYMBOLS`.
    instance: for a symbol whose `instance` is set, the object to read the attribute from.

  Raises:
    PrivateApiError: the module or the attribute does not exist in this TensorFlow/Keras.
  """
  symbol = SYMBOLS[key]
  parts = symbol.attribute.split(".")
  try:
    if symbol.instance:
      value, parts = instance, parts[-1:]
    else:
      value = importlib.import_module(symbol.module)
    for part in parts:
      value = getattr(value, part)
  except (ImportError, AttributeError) as error:
    raise PrivateApiError(
        f"{symbol.name} is missing from this TensorFlow/Keras ({error}); ohl_tf.{symbol.user} "
        "needs it (TensorFlow 2.21 and Keras 3.15 are pinned in requirements.txt). "
        f"Received: symbol={symbol.name}") from None
  return value


# ---------------------------------------------------------------------------------------------
# The functions that use them.
# ---------------------------------------------------------------------------------------------

def unlowered_switch_case(branch_index, branch_fns):
  """`tf.switch_case` whose Case op stays a function call when the graph runs.

  By default TensorFlow lowers a Case op to Switch/Merge nodes before running the graph, and the
  executor then carries a dead tensor through every node of every branch not taken: inside a
  `tf.data` map at 32x32 that made an operation (two switches over the 8 kernels) cost ~30 us
  more per image than the unlowered Case, which runs only the selected branch's function.
  `tf.switch_case` does not expose the choice, `_indexed_case_helper` does.
  """
  return _resolve("indexed_case")(branch_fns, None, branch_index, "switch_case",
                                  lower_using_switch_merge=False)


def _context():
  # The eager context's coordination-service calls have no public equivalent: the strategy only
  # configures a service it starts itself, with TensorFlow's default timeouts.
  return _resolve("context")()


def configure_coordination_service(leader, jobs, heartbeat_timeout_s, register_timeout_s):
  """Starts the coordination service with our own heartbeat and registration timeouts.

  Args:
    leader: the task name of the service leader, e.g. "/job:worker/replica:0/task:0".
    jobs: {job name: number of tasks} of the coordinated jobs.
    heartbeat_timeout_s: a task silent this long is declared dead.
    register_timeout_s: how long the leader waits for every task to join.
  """
  coordinated_job = _resolve("coordinated_job")
  _resolve("configure_coordination_service")(
      _context(), service_type="standalone", service_leader=leader,
      heartbeat_timeout_in_ms=int(heartbeat_timeout_s * 1000),
      cluster_register_timeout_in_ms=int(register_timeout_s * 1000),
      coordinated_jobs=[coordinated_job(name=name, num_tasks=count)
                        for name, count in jobs.items()])


def check_peer_health(task, timeout_s):
  """Raises if `task` (a task name) does not answer within `timeout_s` (the watchdog's ping;
  the public API only notices a lost peer when a collective fails)."""
  _resolve("check_collective_ops_peer_health")(_context(), task,
                                               timeout_in_ms=int(timeout_s * 1000))


def wait_at_barrier(barrier_id, timeout_s):
  """Waits until every task reaches the barrier `barrier_id` (at most `timeout_s`); the public
  API has no barrier outside a strategy's collectives."""
  _resolve("wait_at_barrier")(_context(), barrier_id, int(timeout_s * 1000))


# Collectives between the workers' CPUs, eagerly, on numpy values: the public ones
# (`strategy.gather`, `strategy.extended.broadcast_to`) need distributed values of one strategy
# and cannot take a timeout, which --cluster_timeout needs to name a hung worker.

def all_gather(tensor, **keys):
  """`collective_ops.all_gather_v2(tensor, group_size=, group_key=, instance_key=, timeout=)`."""
  return _resolve("all_gather")(tensor, **keys)


def broadcast_send(tensor, shape, dtype, **keys):
  """`collective_ops.broadcast_send`, with the keys of `all_gather`."""
  return _resolve("broadcast_send")(tensor, shape, dtype, **keys)


def broadcast_recv(shape, dtype, **keys):
  """`collective_ops.broadcast_recv`, with the keys of `all_gather`."""
  return _resolve("broadcast_recv")(shape, dtype, **keys)


def update_checkpoint_state(directory, paths, timestamps, last_preserved_timestamp):
  """Writes a `tf.train.CheckpointManager`'s state file with relative paths.

  The manager's own writer: the public `tf.compat.v1.train.update_checkpoint_state` cannot
  write relative paths, which keep a run directory valid when it is moved.

  Args:
    directory: the checkpoints folder.
    paths: the checkpoint prefixes kept, oldest first; the last one is the latest.
    timestamps: their write times (seconds since the epoch).
    last_preserved_timestamp: the manager deletes beyond max_to_keep only checkpoints written
      after this time.
  """
  _resolve("update_checkpoint_state")(
      directory, model_checkpoint_path=paths[-1], all_model_checkpoint_paths=paths,
      all_model_checkpoint_timestamps=timestamps,
      last_preserved_timestamp=last_preserved_timestamp, save_relative_paths=True)


def export_archive_root(archive):
  """The object a `keras.export.ExportArchive` saves (its private `_tf_trackable`).

  An asset must go on that object to be copied into assets/ and listed in the MetaGraph's
  asset_file_def; ExportArchive has no public way to add one.

  Raises:
    PrivateApiError: this Keras has no such attribute.
  """
  return _resolve("export_archive_trackable", archive)
