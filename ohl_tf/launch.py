r"""Starts a cluster of local worker processes on 127.0.0.1, as several machines would run.

  python -m ohl_tf.launch --local_workers=2 -- --flagfile=flags/quickstart.cfg --trajectories=4

Picks free loopback ports, gives every worker its TF_CONFIG, starts `python -m ohl_tf.main` with
the flags after `--` in each, prints their output line by line prefixed with "[worker k] ", and
exits 0 when all succeed. When one fails, the others notice on their own within seconds (their
watchdog, ohl_tf/cluster.py) and exit with a message; the launcher then gives them
`--grace_s` seconds before it kills them, and exits with the first failure's status.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags

_LOCAL_WORKERS = flags.DEFINE_integer("local_workers", 2, "Worker processes to start.")
_GRACE_S = flags.DEFINE_float(
    "grace_s", 30.0, "After a worker fails, seconds the others get to exit before they are killed.")


def free_ports(count):
  """`count` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
  sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def tf_configs(ports):
  """The TF_CONFIG of each worker of a cluster on these loopback ports (worker 0 is the chief)."""
  cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
  return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
          for i in range(len(ports))]


def _stream(process, prefix, out):
  for line in process.stdout:
    out.write(prefix + line)
    out.flush()


def launch(num_workers, argv, grace_s=30.0, out=None):
  """Runs `python -m ohl_tf.main *argv` in `num_workers` local workers; returns the exit status
  (0 if all succeeded, else the first failure's)."""
  out = sys.stdout if out is None else out
  processes, streams = [], []
  for index, tf_config in enumerate(tf_configs(free_ports(num_workers))):
    env = dict(os.environ, TF_CONFIG=tf_config)
    process = subprocess.Popen([sys.executable, "-m", "ohl_tf.main", *argv], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               bufsize=1)
    processes.append(process)
    streams.append(threading.Thread(target=_stream, args=(process, f"[worker {index}] ", out),
                                    daemon=True))
    streams[-1].start()
  status, deadline = 0, None
  try:
    while any(p.poll() is None for p in processes):
      failed = [p.returncode for p in processes if p.returncode not in (None, 0)]
      if failed and deadline is None:
        status, deadline = failed[0], time.time() + grace_s
      if deadline is not None and time.time() > deadline:
        for index, p in enumerate(processes):
          if p.poll() is None:
            out.write(f"[launch] killing worker {index}\n")
            p.kill()
      time.sleep(0.2)
  except KeyboardInterrupt:
    for p in processes:
      if p.poll() is None:
        p.send_signal(signal.SIGINT)
    raise
  finally:
    for p in processes:
      p.wait()
    for thread in streams:
      thread.join()
  failed = [(i, p.returncode) for i, p in enumerate(processes) if p.returncode != 0]
  if failed:
    out.write("[launch] failed: " + ", ".join(f"worker {i} (exit {code})" for i, code in failed)
              + "\n")
    out.flush()
    return status or failed[0][1]
  return 0


def parse_flags(argv):
  """absl's parsing of the launcher's own flags; a flag of the trainer before `--` (given
  directly or through a --flagfile) ends with one line saying where it belongs."""
  try:
    return flags.FLAGS(argv)
  except flags.UnrecognizedFlagError as error:
    _exit_with(f"--{error.flagname} is not a flag of ohl_tf.launch: put the trainer's flags, "
               "--flagfile included, after `--` (python -m ohl_tf.launch --local_workers=2 -- "
               f"--flagfile=flags/quickstart.cfg). Received: {error.flagvalue}")
  except flags.Error as error:
    _exit_with(str(error))


def _exit_with(message):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(1)


def main(argv):
  sys.exit(launch(_LOCAL_WORKERS.value, argv[1:], _GRACE_S.value))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
