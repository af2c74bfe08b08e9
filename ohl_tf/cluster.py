"""Several machines: one run over the workers of a cluster (docs/several_machines.md).

Every worker runs the same command. Each holds whole trajectories (a contiguous block of the N
indices, `Cluster.local_trajectories`), each under its own local MirroredStrategy over the
worker's devices; only the outer step crosses workers, with TensorFlow collectives over one CPU
device per worker:

  * `gather`: every worker's per-trajectory results (accuracies, scores, validation losses, op
    counts) into the full [N] arrays, identical on every worker, so every worker computes the same
    θ update from the same numbers;
  * `broadcast`: a flat vector of state from one worker to all (the best trajectory's weights,
    BatchNorm statistics and optimizer slots after each outer step; the chief's restored state at
    the start);
  * `check_same_config` at the start: a worker whose settings differ from the chief's is refused;
  * `barrier` at the end: no worker exits before the others are done (an early exit looks like a
    crash to the others).

The outer `tf.distribute.MultiWorkerMirroredStrategy` is built over a `SimpleClusterResolver`
with no accelerators (one CPU device per worker; built from the TF_CONFIG or Slurm resolver
directly it would take every local GPU). It starts the server and the collective executor; the
collectives themselves are the raw ops (`all_gather_v2`, `broadcast_send`/`broadcast_recv`) on
the workers' CPUs with a private group key, far from the strategy's, and a timeout (the
strategy's `broadcast_to` does not cross workers, and its eager `gather` retraces at every
call). It must exist before any local MirroredStrategy: group keys are cluster-wide, which is
also why the local strategies reduce through one device (`devices.make_strategy`), never with
collective ops.

Failures. The coordination service is configured here, before the strategy, with a heartbeat
timeout of `HEARTBEAT_TIMEOUT_S`. A watchdog thread (`start_watchdog`) asks every other worker's
server every `WATCH_INTERVAL_S` whether it is alive: a worker that died or stopped (SIGKILL,
SIGSTOP, a lost machine) ends every other one within seconds, wherever it is (training, not only
in a collective), with a message naming it and the outer step. A collective that fails first
(the peer vanished just then) or times out (--cluster_timeout: a worker alive but stuck) raises
`WorkerLostError`, naming the lost worker when TensorFlow's message names its task or address.
Either way the process exits non-zero: after a failed collective a TensorFlow process cannot run
collectives again. Relaunching every worker with the same command resumes from the chief's last
checkpoint.
"""

import dataclasses
import json
import os
import re
import sys
import threading
import zlib

import numpy as np
import tensorflow as tf

from ohl_tf import private_api

CLUSTERS = ("auto", "tf_config", "slurm", "none")
# The coordination service's heartbeat timeout: a worker silent for this long is declared dead.
HEARTBEAT_TIMEOUT_S = 10
# How long the first worker waits for the others to start (all must join the service).
REGISTER_TIMEOUT_S = 300
# The watchdog: every WATCH_INTERVAL_S it asks every other worker's server whether it is alive;
# WATCH_ATTEMPTS failures in a row (each at most WATCH_TIMEOUT_S) end the process.
WATCH_INTERVAL_S, WATCH_TIMEOUT_S, WATCH_ATTEMPTS = 2, 5, 3
# Settings that may differ between workers: where each finds its data, writes, which devices.
LOCAL_SETTINGS = ("data_dir", "model_dir", "cpu_devices", "cluster")
# Far from the strategy's group keys (which count up from 1 + a small base).
_GROUP_KEY = 1_000_000


class WorkerLostError(RuntimeError):
  """A collective between the workers failed: a worker died, hung or left early."""


class WorkerFailedError(ValueError):
  """Another worker failed before the run started (its log says why)."""


class ConfigMismatchError(ValueError):
  """A worker was started with settings that differ from the chief's."""


# ---------------------------------------------------------------------------------------------
# Which cluster.
# ---------------------------------------------------------------------------------------------

def _tf_config_tasks(environ):
  try:
    spec = json.loads(environ.get("TF_CONFIG", "") or "{}").get("cluster", {})
  except json.JSONDecodeError as error:
    raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
  return sum(len(v) for k, v in spec.items() if k in ("chief", "worker"))


def _slurm_tasks(environ):
  return int(environ.get("SLURM_STEP_NUM_TASKS", environ.get("SLURM_NTASKS", "0")) or 0)


def kind(flag, environ=None):
  """Which cluster --cluster asks for: "tf_config", "slurm" or "none".

  auto picks TF_CONFIG when it names more than one task, else a Slurm step of several tasks,
  else none (one process, as without a cluster).
  """
  environ = os.environ if environ is None else environ
  if flag not in CLUSTERS:
    raise ValueError(f"--cluster must be one of {', '.join(CLUSTERS)}. Received: --cluster={flag}")
  if flag == "auto":
    if _tf_config_tasks(environ) > 1:
      return "tf_config"
    return "slurm" if "SLURM_JOB_ID" in environ and _slurm_tasks(environ) > 1 else "none"
  if flag == "tf_config" and not _tf_config_tasks(environ):
    raise ValueError("--cluster=tf_config but TF_CONFIG names no chief or worker task.")
  if flag == "slurm" and "SLURM_JOB_ID" not in environ:
    raise ValueError("--cluster=slurm outside a Slurm job (no SLURM_JOB_ID).")
  return flag


def resolver(cluster_kind, port_base=8888):
  """A `SimpleClusterResolver` over no accelerators for the cluster of `kind`.

  Slurm: one task per worker (`srun --ntasks-per-node=1` gives each worker its node's GPUs),
  listening on `port_base` + its local task index.
  """
  if cluster_kind == "tf_config":
    base = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  else:
    tasks = _slurm_tasks(os.environ)
    # auto_set_gpu=False: a worker keeps every GPU it sees. The resolver still allocates GPUs
    # to tasks on paper (and asks nvidia-smi how many there are): one each, never used.
    base = tf.distribute.cluster_resolver.SlurmClusterResolver(
        jobs={"worker": tasks}, port_base=port_base, gpus_per_node=tasks, gpus_per_task=1,
        auto_set_gpu=False)
  return tf.distribute.cluster_resolver.SimpleClusterResolver(
      base.cluster_spec(), task_type=base.task_type, task_id=base.task_id,
      num_accelerators={"GPU": 0}, rpc_layer=base.rpc_layer or "grpc")


def split_trajectories(num_trajectories, num_workers):
  """The trajectory indices of each worker: contiguous blocks whose sizes differ by at most 1."""
  if num_trajectories < num_workers:
    raise ValueError(f"--trajectories={num_trajectories} is fewer than the {num_workers} workers: "
                     "every worker must hold at least one whole trajectory.")
  return [list(range(w * num_trajectories // num_workers,
                     (w + 1) * num_trajectories // num_workers)) for w in range(num_workers)]


def config_fingerprint(config):
  """One int32 hash per setting of `config` (in field order), the local ones zeroed."""
  return np.array([0 if f.name in LOCAL_SETTINGS else
                   zlib.crc32(repr(getattr(config, f.name)).encode()) & 0x7FFFFFFF
                   for f in dataclasses.fields(config)], np.int32)


def _first_line(error):
  """The first informative line of a TensorFlow error (not "Graph execution error:")."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()
           and not line.startswith(("Graph execution error", "Detected at node"))]
  return (lines[0] if lines else type(error).__name__)[:300]


def lost_worker(message, addresses=(), me=None):
  """The worker other than `me` that a TensorFlow collective error names, by task
  ("/job:worker/replica:0/task:1") or by address (one of `addresses`, the workers' host:port in
  order); None if it names none."""
  tasks = [int(t) for t in re.findall(r"/job:(?:worker|chief)/replica:\d+/task:(\d+)", message)]
  tasks += [w for w, address in enumerate(addresses)
            if re.search(re.escape(address) + r"(?!\d)", message)]
  return next((t for t in tasks if t != me), None)


# ---------------------------------------------------------------------------------------------
# The cluster.
# ---------------------------------------------------------------------------------------------

class Cluster:
  """This process's place in a cluster of workers, and the collectives between them.

  `Local` has the same interface for one process.

  Create it before anything else touches TensorFlow's devices (after `devices.split_cpu`) and
  before any local MirroredStrategy.

  Args:
    cluster_resolver: a `tf.distribute.cluster_resolver.ClusterResolver` (`resolver`).
    timeout_s: how long a collective waits for the other workers (--cluster_timeout).
  """

  def __init__(self, cluster_resolver, timeout_s):
    spec = cluster_resolver.cluster_spec()
    self._timeout_s = float(timeout_s)
    jobs = [j for j in ("chief", "worker") if j in spec.jobs]
    tasks = [(j, i) for j in jobs for i in range(spec.num_tasks(j))]
    self.num_workers = len(tasks)
    self.task = (cluster_resolver.task_type, int(cluster_resolver.task_id))
    self.index = tasks.index(self.task)
    self.is_chief = self.index == 0
    self._task_names = [f"/job:{j}/replica:0/task:{i}" for j, i in tasks]
    self._addresses = [spec.task_address(j, i) for j, i in tasks]
    # Our own coordination service first: a bounded heartbeat and registration time (the
    # strategy leaves an existing configuration alone).
    private_api.configure_coordination_service(
        self._task_names[0], {j: spec.num_tasks(j) for j in jobs}, HEARTBEAT_TIMEOUT_S,
        REGISTER_TIMEOUT_S)
    self.strategy = tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=cluster_resolver,
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=self._timeout_s))
    self.device = self._task_names[self.index] + "/device:CPU:0"
    self._instances = 0
    self._watchdog = None
    self._barriers = 0
    self.step = None  # the outer step in progress (1-based), for the error messages

  distributed = True  # several processes (`Local`: one)

  def where(self):
    return "at the start" if self.step is None else f"in outer step {self.step}"

  def local_devices(self, names):
    """The devices of `names` that belong to this worker (TensorFlow lists every worker's)."""
    return [n for n in names if n.startswith(self._task_names[self.index] + "/")]

  def local_trajectories(self, num_trajectories):
    return split_trajectories(num_trajectories, self.num_workers)[self.index]

  def worker_of(self, trajectory, num_trajectories):
    """The worker that holds trajectory index `trajectory` of `num_trajectories`."""
    return next(w for w, indices in enumerate(split_trajectories(num_trajectories,
                                                                 self.num_workers))
                if trajectory in indices)

  # -------------------------------------------------------------------------------------------
  # Collectives. Every worker must call them in the same order with the same shapes.
  # -------------------------------------------------------------------------------------------

  def _lost(self, error):
    worker = lost_worker(str(error), self._addresses, self.index)
    who = "another worker" if worker is None else f"worker {worker}"
    raise WorkerLostError(
        f"Lost {who} {self.where()}: a collective failed "
        f"({type(error).__name__}: {_first_line(error)}). This worker "
        f"({self.index}) stops; relaunch every worker with the same command to resume from the "
        "last checkpoint.") from None

  def gather(self, values):
    """Concatenates every worker's `values` ([k_w, ...] numpy, k_w may differ by worker) along
    axis 0, in worker order; every worker gets the same array."""
    values = np.asarray(values)
    sizes = self._gather_rows(np.array([len(values)], np.int32))
    padded = np.zeros((int(sizes.max()),) + values.shape[1:], values.dtype)
    padded[:len(values)] = values
    rows = self._gather_rows(padded)
    return np.concatenate([rows[w * len(padded):w * len(padded) + sizes[w]]
                           for w in range(self.num_workers)])

  def _gather_rows(self, values):
    return self._collective(lambda **keys: private_api.all_gather(
        tf.constant(values), **keys).numpy())

  def broadcast(self, values, source):
    """`values` (a list of numpy arrays, read on worker `source`) on every worker; the other
    workers pass arrays of the same shapes and dtypes. One flat vector per kind: float32 (which
    also carries float16 and bfloat16 exactly), float64, and int64 (optimizer steps, counters)."""
    values = [np.asarray(v) for v in values]
    kinds = [np.float64 if v.dtype == np.float64 else np.int64 if v.dtype.kind in "iub"
             else np.float32 for v in values]
    out = list(values)
    for dtype in (np.float32, np.float64, np.int64):
      picked = [i for i, k in enumerate(kinds) if k is dtype]
      if not picked:
        continue
      flat = self._broadcast_flat(
          np.concatenate([values[i].astype(dtype).ravel() for i in picked]), source)
      offset = 0
      for i in picked:
        size = values[i].size
        out[i] = flat[offset:offset + size].reshape(values[i].shape).astype(values[i].dtype)
        offset += size
    return out

  def _broadcast_flat(self, flat, source):
    if self.index == source:
      self._collective(lambda **keys: private_api.broadcast_send(
          tf.constant(flat), flat.shape, tf.as_dtype(flat.dtype), **keys))
      return flat
    return self._collective(lambda **keys: private_api.broadcast_recv(
        flat.shape, tf.as_dtype(flat.dtype), **keys).numpy())

  def _collective(self, run):
    """Runs `run(group_size=, group_key=, instance_key=, timeout=)`, one collective op of the
    workers' CPUs (a new instance key each time: every worker counts the same), eagerly."""
    self._instances += 1
    try:
      with tf.device(self.device):
        return run(group_size=self.num_workers, group_key=_GROUP_KEY,
                   instance_key=self._instances, timeout=self._timeout_s)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
            tf.errors.CancelledError, tf.errors.InternalError) as error:
      self._lost(error)

  def check_same_config(self, config):
    """Raises ConfigMismatchError on every worker if any worker's settings (but the
    `LOCAL_SETTINGS`) differ from the chief's, naming the workers and the flags."""
    fingerprints = self.gather(config_fingerprint(config)[None])
    names = [f.name for f in dataclasses.fields(config)]
    differing = {w: [names[i] for i in np.flatnonzero(fingerprints[w] != fingerprints[0])]
                 for w in range(1, self.num_workers)}
    details = "; ".join(f"worker {w}: " + ", ".join(f"--{n}" for n in flags)
                        for w, flags in differing.items() if flags)
    if details:
      mine = ", ".join(f"--{n}={getattr(config, n)!r}" for n in differing.get(self.index, []))
      raise ConfigMismatchError(
          f"Refused: the workers were started with configurations that differ from the chief's "
          f"(worker 0) in {details}" + (f" (here {mine})" if mine else "") +
          ". Start every worker with the same flags.")

  # -------------------------------------------------------------------------------------------
  # The watchdog.
  # -------------------------------------------------------------------------------------------

  def start_watchdog(self):
    """Checks every other worker every `WATCH_INTERVAL_S` in a daemon thread; one that does not
    answer `WATCH_ATTEMPTS` times in a row (a dead process: at once; a stopped or unreachable
    one: after `WATCH_TIMEOUT_S` each) ends this process with a message naming it and the outer
    step, wherever this worker is (training, not only in a collective). Stop it before the final
    barrier: a worker that is done and gone is not lost."""
    self._watching = threading.Event()
    self._watchdog = threading.Thread(target=self._watch, args=(self._watching,), daemon=True,
                                      name="ohl_tf_cluster_watchdog")
    self._watchdog.start()

  def stop_watchdog(self):
    if self._watchdog is not None:
      self._watching.set()
      self._watchdog.join()
      self._watchdog = None

  def _watch(self, stop):
    failures = [0] * self.num_workers
    while not stop.wait(WATCH_INTERVAL_S):
      for worker, peer in enumerate(self._task_names):
        if worker == self.index:
          continue
        try:
          private_api.check_peer_health(peer, WATCH_TIMEOUT_S)
          failures[worker] = 0
        except Exception as error:  # pylint: disable=broad-except
          failures[worker] += 1
          if failures[worker] >= WATCH_ATTEMPTS and not stop.is_set():
            self._exit_lost(worker, error)

  def _exit_lost(self, worker, error):
    """Prints why and ends the process with status 1 (from the watchdog thread: the main one
    may be in a long computation)."""
    sys.stdout.flush()
    print(f"error: Lost worker {worker} ({self._task_names[worker]}) {self.where()}: "
          f"it does not answer ({type(error).__name__}: {_first_line(error)}). This worker "
          f"({self.index}) stops; relaunch every worker with the same command to resume from the "
          "last checkpoint.", file=sys.stderr, flush=True)
    os._exit(1)  # pylint: disable=protected-access

  def agree(self, error, resuming):
    """The start's check: every worker says whether it is ready (its own `error` or None, e.g.
    the chief's model_dir check, a data or build error) and the chief whether it resumes;
    returns the chief's `resuming` if all are ready, else raises on every worker (the failed
    one its own error, the others a `WorkerFailedError` naming it)."""
    rows = self.gather(np.array([[error is not None, bool(resuming)]], np.int32))
    failed = [w for w in range(self.num_workers) if rows[w, 0]]
    if error is not None:
      raise error
    if failed:
      raise WorkerFailedError(
          f"Worker{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))} could not start "
          f"(see {'their' if len(failed) > 1 else 'its'} log); every worker stops.")
    return bool(rows[0, 1])

  def barrier(self, name):
    """Waits for every worker (at most --cluster_timeout)."""
    self._barriers += 1
    try:
      private_api.wait_at_barrier(f"ohl_tf_{name}_{self._barriers}", self._timeout_s)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
            tf.errors.InternalError) as error:
      self._lost(error)


class Local:
  """One process holding all N trajectories, with `Cluster`'s interface: it is the chief, and
  its collectives return what they are given, so the trainer has one code path."""
  distributed = False
  num_workers = 1
  index = 0
  is_chief = True

  def __init__(self):
    self.step = None  # as `Cluster.step`

  def local_devices(self, names):
    return list(names)

  def local_trajectories(self, num_trajectories):
    return list(range(num_trajectories))

  def worker_of(self, trajectory, num_trajectories):
    del trajectory, num_trajectories
    return 0

  def gather(self, values):
    return np.asarray(values)

  def broadcast(self, values, source):
    del source
    return list(values)

  def check_same_config(self, config):
    del config  # one process agrees with itself

  def agree(self, error, resuming):
    """Raises `error` if there is one, else returns `resuming` (as `Cluster.agree`)."""
    if error is not None:
      raise error
    return bool(resuming)

  def start_watchdog(self):
    """Nothing to watch: no other worker."""

  def stop_watchdog(self):
    """Nothing to stop."""

  def barrier(self, name):
    del name  # nobody to wait for


def connect(config):
  """The `Cluster` of --cluster (`Local` for a single process); call after `devices.split_cpu`."""
  cluster_kind = kind(config.cluster)
  if cluster_kind == "none":
    return Local()
  return Cluster(resolver(cluster_kind), config.cluster_timeout)
