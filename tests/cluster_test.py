"""Several machines (ohl_tf/cluster.py, ohl_tf/launch.py): which cluster, which trajectories
where, and local clusters of worker processes on 127.0.0.1: the same answer as one process, a
killed worker and the relaunch, a worker with another configuration."""

import dataclasses
import io
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import run_testing
import terminal_testing

from ohl_tf import cluster
from ohl_tf import launch
from ohl_tf import run_config

_ROOT = run_testing.ROOT
# Tiny: 4 steps per epoch, 4 outer steps of 2 steps.
_FLAGS = ["--dataset=synthetic", "--model=resnet8", "--trajectories=4", "--batch_size=16",
          "--train_subset=64", "--val_size=64", "--eval_batch_size=64", "--epochs=2",
          "--inner_steps=2", "--deterministic"]


# ---------------------------------------------------------------------------------------------
# Which cluster, which trajectories (no processes).
# ---------------------------------------------------------------------------------------------

def _tf_config(workers, index=0):
  return json.dumps({"cluster": {"worker": [f"127.0.0.1:{2000 + i}" for i in range(workers)]},
                     "task": {"type": "worker", "index": index}})


@pytest.mark.parametrize("flag,environ,expected", [
    ("auto", {}, "none"),
    ("auto", {"TF_CONFIG": _tf_config(1)}, "none"),  # one task: one process
    ("auto", {"TF_CONFIG": _tf_config(2)}, "tf_config"),
    ("auto", {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}, "none"),
    ("auto", {"SLURM_JOB_ID": "7", "SLURM_STEP_NUM_TASKS": "3"}, "slurm"),
    ("auto", {"TF_CONFIG": _tf_config(2), "SLURM_JOB_ID": "7", "SLURM_NTASKS": "2"}, "tf_config"),
    ("none", {"TF_CONFIG": _tf_config(2)}, "none"),
    ("slurm", {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2"}, "slurm"),
])
def test_cluster_kind_from_the_flag_and_the_environment(flag, environ, expected):
  assert cluster.kind(flag, environ) == expected


@pytest.mark.parametrize("flag,environ,message", [
    ("tf_config", {}, "TF_CONFIG names no chief or worker task"),
    ("slurm", {}, "outside a Slurm job"),
    ("auto", {"TF_CONFIG": "{not json"}, "TF_CONFIG is not valid JSON"),
])
def test_a_cluster_the_environment_does_not_provide_is_refused(flag, environ, message):
  with pytest.raises(ValueError, match=message):
    cluster.kind(flag, environ)


def test_config_rejects_an_unknown_cluster():
  with pytest.raises(ValueError, match="--cluster must be one of auto, tf_config, slurm, none"):
    run_config.Config(cluster="mpi")


def test_every_worker_holds_whole_trajectories_in_contiguous_blocks():
  assert cluster.split_trajectories(4, 2) == [[0, 1], [2, 3]]
  assert cluster.split_trajectories(4, 3) == [[0], [1], [2, 3]]
  assert cluster.split_trajectories(3, 3) == [[0], [1], [2]]
  with pytest.raises(ValueError, match="--trajectories=2 is fewer than the 3 workers"):
    cluster.split_trajectories(2, 3)


def test_config_fingerprint_ignores_only_the_local_settings():
  config = run_config.Config(model_dir="/a")
  local = dataclasses.replace(config, model_dir="/b", data_dir="/data", cpu_devices=2,
                              cluster="tf_config")
  assert np.array_equal(cluster.config_fingerprint(config), cluster.config_fingerprint(local))
  names = [f.name for f in dataclasses.fields(config)]
  other = cluster.config_fingerprint(dataclasses.replace(config, lr=0.2))
  assert [names[i] for i in np.flatnonzero(other != cluster.config_fingerprint(config))] == ["lr"]


def test_the_lost_worker_is_read_from_tensorflows_message():
  assert cluster.lost_worker("Additional GRPC error information from remote target "
                             "/job:worker/replica:0/task:1 while calling RecvBuf") == 1
  assert cluster.lost_worker("Socket closed") is None
  addresses = ["127.0.0.1:5123", "127.0.0.1:51233"]
  assert cluster.lost_worker("ipv4:127.0.0.1:51233: Failed to connect to remote host",
                             addresses) == 1
  assert cluster.lost_worker("ipv4:127.0.0.1:512330: Failed", addresses) is None
  assert cluster.lost_worker("device_/job:worker/replica:0/task:0/device:CPU:0 aborted by: "
                             "ipv4:127.0.0.1:51233: Connection refused", addresses, me=0) == 1


def test_launcher_gives_every_worker_its_tf_config():
  ports = launch.free_ports(3)
  assert len(set(ports)) == 3
  configs = [json.loads(c) for c in launch.tf_configs(ports)]
  assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
  assert configs[0]["cluster"] == {"worker": [f"127.0.0.1:{p}" for p in ports]}


@pytest.mark.parametrize("flags,message", [
    (["--flagfile=flags/quickstart.cfg"],
     "error: --dataset is not a flag of ohl_tf.launch: put the trainer's flags, --flagfile "
     "included, after `--` (python -m ohl_tf.launch --local_workers=2 -- "
     "--flagfile=flags/quickstart.cfg). Received: --dataset=synthetic\n"),
    (["--epochs=1"], "error: --epochs is not a flag of ohl_tf.launch"),
    (["--local_workers=two"], "error: flag --local_workers=two: invalid literal"),
])
def test_the_launcher_says_where_the_trainers_flags_go(flags, message):
  result = subprocess.run([sys.executable, "-m", "ohl_tf.launch", "--local_workers=2", *flags],
                          cwd=_ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1
  assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1, result.stderr
  assert not result.stdout  # no worker was started


# ---------------------------------------------------------------------------------------------
# Local clusters of worker processes.
# ---------------------------------------------------------------------------------------------

def _main(model_dir, *flags):
  return run_testing.command(model_dir, *_FLAGS, *flags, small=False)


def _start_workers(tmp_path, name, flags_of_worker, ports=None):
  """Starts one `python -m ohl_tf.main` per entry of `flags_of_worker` with its TF_CONFIG;
  returns the processes and their output files."""
  configs = launch.tf_configs(ports or launch.free_ports(len(flags_of_worker)))
  processes, logs = [], []
  for index, (tf_config, flags) in enumerate(zip(configs, flags_of_worker)):
    log = tmp_path / f"{name}_{index}.log"
    with open(log, "w") as out:
      processes.append(subprocess.Popen(
          flags, cwd=_ROOT, env=terminal_testing.environment(TF_CONFIG=tf_config), stdout=out,
          stderr=subprocess.STDOUT))
    logs.append(log)
  return processes, logs


def _wait(processes, timeout=300):
  deadline = time.time() + timeout
  for p in processes:
    p.wait(timeout=max(deadline - time.time(), 1))
  return [p.returncode for p in processes]


def _theta(model_dir):
  return np.array(json.loads((model_dir / "policy.json").read_text())["theta"])


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("one") / "run"
  result = run_testing.run(model_dir, *_FLAGS, timeout=300, small=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
  """2 workers x 2 trajectories through the launcher."""
  model_dir = tmp_path_factory.mktemp("two") / "run"
  command = [sys.executable, "-m", "ohl_tf.launch", "--local_workers=2", "--",
             *_main(model_dir)[3:]]
  result = subprocess.run(command, cwd=_ROOT, env=terminal_testing.environment(),
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return model_dir, result.stdout


@pytest.mark.slow
def test_two_workers_give_the_answer_of_one_process(one_process, two_workers):
  model_dir, output = two_workers
  np.testing.assert_allclose(_theta(model_dir), _theta(one_process), atol=1e-6)
  assert np.abs(_theta(model_dir)).max() > 1e-3  # θ moved
  results = [json.loads((d / "results.json").read_text()) for d in (one_process, model_dir)]
  assert results[0]["test_accuracy"] == results[1]["test_accuracy"]
  lines = output.splitlines()
  assert "[worker 1]   search    N=4 on 2 workers; worker 1 has trajectories 2-3 on CPU:0 | CPU:0" \
      in lines
  # Both see every trajectory's accuracies; only the chief reports the results.
  assert [line for line in lines if "outer step 4/4" in line and "[worker 1]" in line]
  assert [line[:18] for line in lines if "results: " in line] == ["[worker 0] results"]
  # The chief checkpoints its own trajectories.
  names = {name.split("/")[0] for name in run_testing.final_checkpoint(model_dir)}
  assert {"trajectory_0", "trajectory_1"} <= names and "trajectory_2" not in names


@pytest.mark.slow
def test_three_workers_of_uneven_shares_give_the_answer_of_one_process(one_process, tmp_path):
  model_dir = tmp_path / "run"  # trajectories [0], [1], [2, 3]
  processes, logs = _start_workers(tmp_path, "three", [_main(model_dir)] * 3)
  assert _wait(processes) == [0, 0, 0], [log.read_text()[-3000:] for log in logs]
  np.testing.assert_allclose(_theta(model_dir), _theta(one_process), atol=1e-6)
  results = [json.loads((d / "results.json").read_text()) for d in (one_process, model_dir)]
  assert results[0]["test_accuracy"] == results[1]["test_accuracy"]
  assert "worker 2 has trajectories 2-3" in logs[2].read_text()


@pytest.mark.slow
def test_a_killed_worker_stops_the_others_and_a_relaunch_resumes(two_workers, tmp_path):
  uninterrupted, _ = two_workers
  model_dir = tmp_path / "run"
  ports = launch.free_ports(2)
  processes, logs = _start_workers(tmp_path, "killed", [_main(model_dir)] * 2, ports)
  deadline = time.time() + 240
  while not (model_dir / "checkpoints" / "ckpt-1.index").exists():
    assert all(p.poll() is None for p in processes) and time.time() < deadline, [
        log.read_text()[-2000:] for log in logs]
    time.sleep(0.05)
  processes[1].send_signal(signal.SIGKILL)
  killed = time.time()
  assert _wait(processes[:1], timeout=120) == [1]
  seconds = time.time() - killed
  message = logs[0].read_text()
  assert "error: Lost worker 1" in message and "in outer step " in message, message[-2000:]
  assert "relaunch every worker with the same command" in message
  print(f"worker 0 exited {seconds:.1f} s after worker 1 was killed")
  assert seconds < 60
  # Nothing half-written: the latest checkpoint reads, and there are no results.
  assert tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
  assert not (model_dir / "results.json").exists()

  processes, logs = _start_workers(tmp_path, "resumed", [_main(model_dir)] * 2, ports)
  assert _wait(processes) == [0, 0], [log.read_text()[-3000:] for log in logs]
  assert logs[0].read_text().startswith(f"Resuming the run in {model_dir}\n")
  np.testing.assert_array_equal(_theta(model_dir), _theta(uninterrupted))
  run_testing.assert_same_checkpoint(model_dir, run_testing.final_checkpoint(uninterrupted))


@pytest.mark.slow
def test_a_worker_with_another_configuration_is_refused(tmp_path):
  model_dir = tmp_path / "run"
  processes, logs = _start_workers(tmp_path, "mismatch",
                                   [_main(model_dir), _main(model_dir, "--lr=0.2")])
  assert _wait(processes, timeout=120) == [1, 1]
  for index, log in enumerate(logs):
    text = log.read_text()
    assert ("error: Refused: the workers were started with configurations that differ from the "
            "chief's (worker 0) in worker 1: --lr") in text, text[-2000:]
    assert "Traceback" not in text
  assert "(here --lr=0.2)" in logs[1].read_text()
  assert not model_dir.exists()  # nothing written


@pytest.mark.slow
def test_the_launcher_fails_when_a_worker_fails(tmp_path):
  out = io.StringIO()
  status = launch.launch(2, [*_FLAGS, f"--model_dir={tmp_path / 'run'}", "--trajectories=0"],
                         out=out)
  assert status == 1
  text = out.getvalue()
  assert "[worker 1] error: --trajectories must be >= 1" in text, text[-2000:]
  assert "[launch] failed: worker 0 (exit 1), worker 1 (exit 1)" in text


def test_a_slurm_step_of_two_tasks_resolves_to_two_workers_without_gpus(monkeypatch):
  for name, value in {"SLURM_JOB_ID": "7", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2",
                      "SLURM_STEP_NODELIST": "node[1-2]",
                      "SLURM_STEP_TASKS_PER_NODE": "1(x2)"}.items():
    monkeypatch.setenv(name, value)
  resolver = cluster.resolver(cluster.kind("auto"))
  assert resolver.cluster_spec().as_dict() == {"worker": ["node1:8888", "node2:8888"]}
  assert (resolver.task_type, resolver.task_id) == ("worker", 1)
  assert resolver.num_accelerators() == {"GPU": 0}


def test_a_checkpoint_of_fewer_trajectories_resumes_with_their_state(tmp_path):
  # A chief's checkpoint holds its own trajectories; resumed by a process that holds more (one
  # machine, or another layout of workers), the missing ones take the first one's state.
  from ohl_tf import datasets  # pylint: disable=g-import-not-at-top
  from ohl_tf import search  # pylint: disable=g-import-not-at-top
  config = run_config.Config(model="resnet8", trajectories=2, epochs=1, batch_size=16,
                             train_subset=32, val_size=32, eval_batch_size=32,
                             model_dir=str(tmp_path / "run"))
  data = datasets.load("synthetic", val_size=32)
  chief = search.OnlineSearch(config, data, [["/device:CPU:0"]])  # trajectory 0 only
  kernel = chief.trajectories[0].model.weights[0]
  kernel.assign_add(tf.ones_like(kernel))
  chief.outer.outer_step.assign(1)
  chief.checkpoint.save(str(tmp_path / "run" / "checkpoints" / "ckpt"))
  resumed = search.OnlineSearch(config, data, [["/device:CPU:0"], ["/device:CPU:1"]])
  assert resumed.start() == 1
  for t in resumed.trajectories:
    for value, expected in zip(t.state, chief.trajectories[0].state):
      np.testing.assert_array_equal(value.numpy(), expected.numpy())
