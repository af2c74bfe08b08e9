"""Tests of the online loop (ohl_tf.search) and its pieces: the outer step, devices, the run
directory (ohl_tf.run_directory) and its checkpoint's keys."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import pipeline_testing
from ohl_tf import augment
from ohl_tf import datasets
from ohl_tf import estimators
from ohl_tf import export
from ohl_tf import policy
from ohl_tf import policy_file
from ohl_tf import population
from ohl_tf import report
from ohl_tf import run_config
from ohl_tf import run_directory
from ohl_tf import search

_CPUS = [f"/device:CPU:{i}" for i in range(4)]


@pytest.fixture(scope="module")
def small_data(cifar_images):
  labels = (np.arange(len(cifar_images)) % 4).astype(np.int32)
  return datasets.ImageDataset(
      name="cifar10-reduced subset", train_images=cifar_images[:160],
      train_labels=labels[:160], val_images=cifar_images[160:224], val_labels=labels[160:224],
      test_images=cifar_images[224:], test_labels=labels[224:],
      class_names=("a", "b", "c", "d"), mean=(125.3, 123.0, 113.9), std=(63.0, 62.1, 66.7))


def _config(tmp_path, **overrides):
  settings = dict(model="resnet8", trajectories=3, epochs=1, inner_steps=2, batch_size=16,
                  lr=0.05, val_size=64, eval_batch_size=32, model_dir=str(tmp_path / "run"))
  settings.update(overrides)
  return run_config.Config(**settings)


def _state(t):
  return [v.numpy() for v in t.state]


# ---------------------------------------------------------------------------------------------
# The outer step (Algorithm 1).
# ---------------------------------------------------------------------------------------------

def test_outer_step_moves_theta_and_copies_the_best_state_to_all(tmp_path, small_data):
  config = _config(tmp_path)
  ohl = search.OnlineSearch(config, small_data, [[d] for d in _CPUS[:3]])
  assert ohl.start() == 0
  initial = [_state(t) for t in ohl.trajectories]
  assert all(all(np.array_equal(a, b) for a, b in zip(initial[0], s)) for s in initial)  # w_0
  theta = tf.zeros([augment.NUM_OPERATIONS])
  for t in ohl.trajectories:  # each trains on its own operations: weights, BN, slots diverge
    t.train(t.input_iterator(pipeline_testing.period_batches(
        ohl.population.train_data, 0, t.index, policy.log_operation_probabilities(theta))), 2)
  states = [_state(t) for t in ohl.trajectories]
  assert not np.array_equal(states[0][0], states[1][0])
  counts = np.stack([t.op_counts.numpy() for t in ohl.trajectories])
  accuracies = tf.constant([0.3, 0.7, 0.5])

  expected_theta = tf.Variable(tf.zeros([augment.NUM_OPERATIONS]))
  estimators.get("reinforce").step(expected_theta, estimators.make_theta_optimizer(), counts,
                                   accuracies)
  rewards = ohl.outer.update(accuracies, accuracies, ohl.outer.perturbations(0), tf.constant(1),
                             tf.constant(counts))
  ohl.population.make_equal(1)

  assert int(ohl.outer.outer_step.numpy()) == 1
  np.testing.assert_allclose(rewards, estimators.normalized_rewards(accuracies), atol=1e-6)
  np.testing.assert_allclose(ohl.outer.theta.numpy(), expected_theta.numpy(), atol=1e-7)
  np.testing.assert_allclose(ohl.outer.theta_history.numpy()[1], ohl.outer.theta.numpy())
  names = [v.path for v in ohl.trajectories[1].state]
  assert any("moving_mean" in n for n in names) and any("momentum" in n for n in names)
  for t in ohl.trajectories:
    for name, value, source in zip(names, _state(t), states[1]):
      np.testing.assert_array_equal(value, source, err_msg=f"trajectory {t.index}: {name}")


def test_lineage_sums_the_best_trajectorys_counts_into_checkpoint_and_policy_file(tmp_path,
                                                                                small_data):
  config = _config(tmp_path, trajectories=2, estimator="element_es", reward="loss")
  ohl = search.OnlineSearch(config, small_data, [[d] for d in _CPUS[:2]])
  steps = []
  ohl.run(on_outer_step=steps.append)
  expected = sum(step["op_counts"][step["best"]] for step in steps)
  assert len(steps) == ohl.schedule.num_periods == 5
  np.testing.assert_array_equal(ohl.outer.lineage.numpy(), expected)
  reader = tf.train.load_checkpoint(os.path.join(config.model_dir, "checkpoints"))
  np.testing.assert_array_equal(reader.get_tensor("lineage/.ATTRIBUTES/VARIABLE_VALUE"), expected)
  lineage = json.loads(open(os.path.join(config.model_dir, "policy.json")).read())["lineage"]
  assert lineage["operations"] == expected.sum() == 5 * 2 * config.batch_size
  np.testing.assert_allclose(np.reshape(lineage["probabilities"], -1), expected / expected.sum())
  # Every period's ε were antithetic, and each trajectory drew from its own θ_n.
  for step in steps:
    np.testing.assert_array_equal(step["perturbations"][1], -step["perturbations"][0])


def test_element_es_trajectories_sample_at_their_own_perturbed_theta(tmp_path, small_data):
  config = _config(tmp_path, trajectories=4, estimator="element_es", es_sigma=0.5)
  ohl = search.OnlineSearch(config, small_data, [[d] for d in _CPUS])
  ohl.outer.theta.assign(tf.random.stateless_normal([augment.NUM_OPERATIONS], [1, 2]))
  eps = estimators.element_perturbations(config.seed, 3, 4, augment.NUM_ELEMENTS)
  for n, log_probs in enumerate(ohl.outer.sampling_log_probs(3)):
    expected = policy.log_operation_probabilities(
        ohl.outer.theta + 0.5 * estimators.spread_to_operations(eps[n]))
    np.testing.assert_allclose(log_probs, expected, rtol=1e-6)
  # The paper's estimator samples every trajectory at θ itself.
  plain = search.OnlineSearch(_config(tmp_path, trajectories=2), small_data,
                              [[d] for d in _CPUS[:2]])
  a, b = plain.outer.sampling_log_probs(3)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(plain.outer.perturbations(3),
                                np.zeros([2, augment.NUM_ELEMENTS]))


def test_theta_starts_at_theta_init_with_the_uniform_policy(tmp_path, small_data):
  config = _config(tmp_path, trajectories=2, estimator="element_es", theta_init=-6.0,
                   search_space="paper_identity")
  ohl = search.OnlineSearch(config, small_data, [[d] for d in _CPUS[:2]])
  np.testing.assert_array_equal(ohl.outer.theta.numpy(), np.full([1369], -6.0, np.float32))
  np.testing.assert_array_equal(ohl.outer.theta_history.numpy()[0], ohl.outer.theta.numpy())
  uniform = policy.log_operation_probabilities(ohl.outer.theta)
  np.testing.assert_allclose(uniform, np.full([1369], -np.log(1369.0)), rtol=1e-6)
  eps = estimators.element_perturbations(config.seed, 0, 2, 37)
  for n, log_probs in enumerate(ohl.outer.sampling_log_probs(0)):  # θ_n = θ + σAε_n as ever
    np.testing.assert_allclose(
        log_probs, policy.log_operation_probabilities(
            ohl.outer.theta + estimators.spread_to_operations(eps[n])), rtol=1e-6)


@pytest.mark.parametrize("estimator", estimators.names())
@pytest.mark.parametrize("reward", estimators.REWARDS)
def test_every_estimator_learns_with_every_reward(tmp_path, small_data, estimator, reward):
  config = _config(tmp_path, trajectories=2, train_subset=64, estimator=estimator, reward=reward)
  ohl = search.OnlineSearch(config, small_data, [[d] for d in _CPUS[:2]])
  steps = []
  ohl.run(on_outer_step=steps.append)
  theta = ohl.outer.theta.numpy()
  assert np.all(np.isfinite(theta)) and np.any(theta != 0)
  for step in steps:  # the reward scores, the accuracies are recorded
    expected = step["accuracies"] if reward == "accuracy" else -np.abs(step["scores"])
    np.testing.assert_array_equal(step["scores"], expected)


@pytest.mark.parametrize("space", [augment.PAPER_IDENTITY, augment.AUTOAUGMENT_CIFAR10],
                         ids=lambda s: s.name)
def test_a_run_beyond_the_papers_space_learns_and_exports_its_operations(tmp_path, small_data,
                                                                         space):
  # AutoAugment's space perturbs one ε per operation (--es_groups), as the recommended file may.
  es_groups = "operations" if space == augment.AUTOAUGMENT_CIFAR10 else "elements"
  config = _config(tmp_path, trajectories=2, estimator="element_es", reward="loss",
                   search_space=space.name, es_groups=es_groups)
  ohl = search.OnlineSearch(config, small_data, [[d] for d in _CPUS[:2]])
  k, e, identity = space.num_operations, space.num_elements, space.identity
  assert ohl.outer.theta.shape == [k] and ohl.outer.lineage.shape == [k]
  groups = space.operation_groups if es_groups == "operations" else None
  np.testing.assert_array_equal(ohl.outer.perturbations(3), estimators.element_perturbations(
      config.seed, 3, 2, e, groups))
  steps = []
  ohl.run(on_outer_step=steps.append)
  for period, step in enumerate(steps):  # one operation counted per image
    start, end = ohl.schedule.period(period)
    assert step["op_counts"].shape == (2, k)
    assert step["op_counts"].sum() == 2 * (end - start) * config.batch_size
  applied = np.sum([step["op_counts"] for step in steps], axis=(0, 1))
  assert applied[identity * e:].sum() > 0 and applied[identity::e].sum() > 0  # Identity 1st, 2nd
  assert np.any(ohl.outer.theta.numpy() != 0)
  payload = json.loads(open(os.path.join(config.model_dir, "policy.json")).read())
  assert payload["search_space"] == space.name and len(payload["theta"]) == k
  np.testing.assert_allclose(policy_file.read(os.path.join(config.model_dir, "policy.json"),
                                              space),
                             policy.operation_probabilities(ohl.outer.theta.numpy()), rtol=1e-6)


def test_a_model_dir_or_policy_file_of_another_search_space_is_refused(tmp_path, small_data):
  config = _config(tmp_path)
  run_directory.start(config, resuming=False)
  with pytest.raises(ValueError, match=r"different configuration \(--search_space: 'paper' "
                                       r"there, 'paper_identity' now\)"):
    run_directory.check(dataclasses.replace(config, search_space="paper_identity"))
  # A run started before --search_space existed was a run in the paper's space.
  path = os.path.join(config.model_dir, "config.json")
  saved = json.load(open(path))
  del saved["search_space"]
  export.write_json(path, saved)
  assert not run_directory.check(config)
  with pytest.raises(ValueError, match=r"--search_space: 'paper' there"):
    run_directory.check(dataclasses.replace(config, search_space="paper_identity"))
  paper_policy = tmp_path / "paper.json"
  export.write_json(paper_policy, policy_file.learned_payload(np.zeros(1296, np.float32)))
  identity = _config(tmp_path, model_dir=str(tmp_path / "identity"),
                     policy=f"file:{paper_policy}", search_space="paper_identity")
  with pytest.raises(ValueError, match=r"--policy=file:.*paper.json was learned in "
                                       r"--search_space=paper .*--search_space=paper_identity"):
    search.OnlineSearch(identity, small_data, [[_CPUS[0]]])
  assert not os.path.exists(identity.model_dir)


def test_a_checkpoint_from_before_the_lineage_resumes(tmp_path, small_data):
  config = _config(tmp_path, trajectories=2, epochs=2)
  old = search.OnlineSearch(config, small_data, [[d] for d in _CPUS[:2]])
  old_checkpoint = tf.train.Checkpoint(
      **{k: v for k, v in old.checkpointed.items() if k != run_directory.LINEAGE})
  old.outer.outer_step.assign(2)
  old_checkpoint.save(os.path.join(config.model_dir, "checkpoints", "ckpt"))
  resumed = search.OnlineSearch(config, small_data, [[d] for d in _CPUS[:2]])
  assert resumed.start() == 2
  assert not resumed.outer.lineage.numpy().any()


# The checkpoint keys of a --model=resnet8 run written by the code before ohl_tf.search was split
# into its pieces (commit 57ef149, `tf.train.list_variables`). Runs written then must resume now,
# so a renamed object or attribute anywhere in the checkpoint's graph must fail here.
_OUTER_KEYS = ("lineage", "outer_step", "save_counter", "theta", "theta_history",
               "theta_optimizer/_iterations", "theta_optimizer/_learning_rate",
               "theta_optimizer/_variables/2", "theta_optimizer/_variables/3", "val_history",
               "wall_time")
_RESNET8_TRAJECTORY_KEYS = (
    [f"model/_operations/{layer}/{statistic}" for layer in (2, 5, 8, 13, 17, 22, 26)
     for statistic in ("moving_mean", "moving_variance")] + ["optimizer/_iterations"] +
    [f"optimizer/_trainable_variables/{i}" for i in range(23)] +
    [f"optimizer/_variables/{i}" for i in range(1, 24)])


def test_the_checkpoint_keys_are_those_of_the_runs_written_before(tmp_path, small_data):
  config = _config(tmp_path, trajectories=2, train_subset=32, inner_steps=0)
  search.OnlineSearch(config, small_data, [[d] for d in _CPUS[:2]]).run()
  keys = sorted(name for name, _ in tf.train.list_variables(
      run_directory.path(config.model_dir, run_directory.CHECKPOINTS)))
  expected = sorted(["_CHECKPOINTABLE_OBJECT_GRAPH"] +
                    [run_directory.variable_key(key) for key in _OUTER_KEYS] +
                    [run_directory.variable_key(f"trajectory_{n}/{key}") for n in (0, 1)
                     for key in _RESNET8_TRAJECTORY_KEYS])
  assert keys == expected
  # The report reads the run's θ under the same keys.
  assert report.read_run(config.model_dir).outer_step == 1


def test_ties_for_the_best_trajectory_go_to_the_lower_loss_then_the_lower_index():
  assert search.best_trajectory([0.5, 0.9, 0.7], [1.0, 2.0, 0.1]) == 1
  assert search.best_trajectory([0.9, 0.9, 0.9], [0.3, 0.2, 0.2]) == 1
  assert search.best_trajectory([0.9, 0.9], [0.2, 0.2]) == 0
  assert search.best_trajectory([-0.3, -0.2], [0.3, 0.2]) == 1  # reward=loss: scores = −loss


def test_uniform_policy_keeps_theta_at_zero(tmp_path, small_data):
  ohl = search.OnlineSearch(_config(tmp_path, policy="uniform", trajectories=2), small_data,
                            [[_CPUS[0]], [_CPUS[1]]])
  counts = tf.zeros([2, augment.NUM_OPERATIONS], tf.int32)
  ohl.outer.update(tf.constant([0.2, 0.9]), tf.constant([0.2, 0.9]), ohl.outer.perturbations(0),
                   tf.constant(1), counts)
  assert not ohl.outer.theta.numpy().any()


# ---------------------------------------------------------------------------------------------
# Trajectories on devices of their own: 2 trajectories x 2 logical CPU devices.
# ---------------------------------------------------------------------------------------------

def test_two_trajectories_of_two_devices_each(tmp_path, small_data):
  config = _config(tmp_path, trajectories=2, inner_steps=5)
  ohl = search.OnlineSearch(config, small_data, [_CPUS[:2], _CPUS[2:]])
  assert [t.strategy.num_replicas_in_sync for t in ohl.trajectories] == [2, 2]
  assert [t.devices for t in ohl.trajectories] == [tuple(_CPUS[:2]), tuple(_CPUS[2:])]
  results = ohl.run()
  assert int(ohl.outer.outer_step.numpy()) == 2 == ohl.schedule.num_periods
  assert all(t.step == 10 for t in ohl.trajectories)
  assert 0 <= results["test_accuracy"] <= 1 and results["trajectories"] == 2
  assert results["search_cost_iterations"] == 2 * 10 * 16 / 1024
  a, b = (_state(t) for t in ohl.trajectories)
  assert all(np.array_equal(x, y) for x, y in zip(a, b))  # both hold w_n* after the last step


# ---------------------------------------------------------------------------------------------
# The run directory and failures.
# ---------------------------------------------------------------------------------------------

def test_model_dir_with_another_configuration_is_refused(tmp_path):
  config = _config(tmp_path)
  assert not run_directory.check(config)
  run_directory.start(config, resuming=False)
  other = dataclasses.replace(config, lr=0.2, trajectories=5)
  with pytest.raises(ValueError, match=r"different configuration \(--lr: 0.05 there, 0.2 now; "
                                       r"--trajectories: 3 there, 5 now\).*--overwrite"):
    run_directory.check(other)
  # Paths and speed settings may change on resumption.
  assert not run_directory.check(dataclasses.replace(config, eval_batch_size=7,
                                                        data_dir="/elsewhere"))
  keep = os.path.join(config.model_dir, "notes.txt")
  open(keep, "w").close()
  os.makedirs(os.path.join(config.model_dir, "checkpoints"))
  replacement = dataclasses.replace(other, overwrite=True)
  assert not run_directory.check(replacement)
  run_directory.start(replacement, resuming=False)
  assert json.load(open(os.path.join(config.model_dir, "config.json")))["lr"] == 0.2
  assert os.path.exists(keep)  # --overwrite deletes the run's artefacts only
  assert not os.path.exists(os.path.join(config.model_dir, "checkpoints"))


def test_a_run_started_before_a_setting_existed_still_matches(tmp_path):
  config = _config(tmp_path)
  run_directory.start(config, resuming=False)
  path = os.path.join(config.model_dir, "config.json")
  saved = json.load(open(path))
  del saved["image_size"]  # config.json of a version without --image_size
  export.write_json(path, saved)
  assert not run_directory.check(config)  # no checkpoint yet, and no mismatch either
  with pytest.raises(ValueError, match=r"--image_size: 0 there, 64 now"):
    run_directory.check(dataclasses.replace(config, image_size=64))


def test_non_finite_loss_stops_naming_trajectory_and_step(tmp_path, small_data):
  config = _config(tmp_path, trajectories=2, lr=1e12, inner_steps=1, epochs=2)
  ohl = search.OnlineSearch(config, small_data, [[_CPUS[0]], [_CPUS[1]]])
  with pytest.raises(population.NonFiniteLossError,
                     match=r"Trajectory \d produced a non-finite training loss at step \d+ "
                           r"\(period (\d+)\)") as error:
    ohl.run()
  period = int(error.value.args[0].split("(period ")[1].split(")")[0])
  latest = tf.train.latest_checkpoint(os.path.join(config.model_dir, "checkpoints"))
  assert (latest is None) == (period == 0)
  if latest:
    assert latest.endswith(f"ckpt-{period}")  # the last good outer step, not the failed one


def test_the_per_image_path_trains_like_the_batched_one(tmp_path, small_data):
  runs = {}
  for path in ("per_image", "batched"):
    config = _config(tmp_path / path, trajectories=2, train_subset=64, augment_path=path)
    ohl = search.OnlineSearch(config, small_data, [[d] for d in _CPUS[:2]])
    assert ohl.population.train_data.augment_path == path
    applied = []
    results = ohl.run(on_outer_step=lambda step, applied=applied: applied.append(
        step["op_counts"]))
    runs[path] = (np.sum(applied, axis=(0, 1)), ohl.outer.theta.numpy(), results)
  counts, theta, results = runs["per_image"]
  assert counts.sum() == 4 * 16 * 2  # epochs x steps x batch x trajectories, one op per image
  np.testing.assert_array_equal(counts, runs["batched"][0])  # the same operations were drawn
  assert np.all(np.isfinite(theta)) and np.any(theta != 0)
  assert 0 <= results["test_accuracy"] <= 1


def test_config_rejects_bad_values():
  with pytest.raises(ValueError, match=r"--policy must be one of ohl, uniform, file:PATH, "
                     r"autoaugment, randaugment, trivialaugment, cutout, none. "
                     r"Received: --policy=random"):
    run_config.Config(policy="random")
  with pytest.raises(ValueError, match=r"--trajectories must be >= 1. Received: --trajectories=0"):
    run_config.Config(trajectories=0)
  with pytest.raises(ValueError, match=r"--augment_path must be one of batched, per_image. "
                     r"Received: --augment_path=gpu"):
    run_config.Config(augment_path="gpu")


# ---------------------------------------------------------------------------------------------
# The baselines: every --policy through the same loop.
# ---------------------------------------------------------------------------------------------

_FAVOURED = (37, 700)  # the only operations of the fixed policy below


@pytest.fixture(scope="module")
def fixed_policy_path(tmp_path_factory):
  theta = np.full([augment.NUM_OPERATIONS], -30.0, np.float32)
  theta[list(_FAVOURED)] = 30.0  # p ~ 1/2 each, the others ~ 1e-26
  path = tmp_path_factory.mktemp("policy") / "policy.json"
  payload = policy_file.learned_payload(theta)
  matrix = np.array(payload["probabilities"])
  matrix[matrix < 1e-6] = 0  # exactly two operations
  payload["probabilities"] = (matrix / matrix.sum()).tolist()
  export.write_json(str(path), payload)
  return str(path)


@pytest.mark.parametrize("policy_name", ["ohl", "uniform", "file", "autoaugment", "randaugment",
                                         "trivialaugment", "cutout", "none"])
def test_every_policy_trains_through_the_same_loop(tmp_path, small_data, fixed_policy_path,
                                                   policy_name):
  spec = f"file:{fixed_policy_path}" if policy_name == "file" else policy_name
  config = _config(tmp_path, policy=spec, trajectories=2, train_subset=64)
  ohl = search.OnlineSearch(config, small_data, [[d] for d in _CPUS[:2]])
  applied = []
  results = ohl.run(on_outer_step=lambda step: applied.append(step["op_counts"]))
  counts = np.sum(applied, axis=(0, 1))
  assert results["policy"] == spec and 0 <= results["test_accuracy"] <= 1
  assert "results: dataset=" in search.results_line(results)
  theta_moved = bool(np.any(ohl.outer.theta.numpy() != 0))
  assert theta_moved == (policy_name == "ohl")
  assert os.path.exists(os.path.join(config.model_dir, "policy.json")) == (
      policy_name in ("ohl", "uniform", "file"))
  if policy_name in ("ohl", "uniform", "file"):  # one OHL operation counted per image
    assert counts.sum() == ohl.schedule.total_steps * config.batch_size * config.trajectories
  else:
    assert counts.sum() == 0
  if policy_name == "file":
    assert set(np.flatnonzero(counts)) <= set(_FAVOURED)
    kept = json.loads(open(os.path.join(config.model_dir, "policy.json")).read())
    assert kept["source"] == fixed_policy_path
    assert kept["probabilities"] == json.loads(open(fixed_policy_path).read())["probabilities"]


def test_batch_policies_change_the_images_and_none_drops_cutout(tmp_path, small_data):
  def first_batch(policy_name, cutout=16):
    ohl = search.OnlineSearch(_config(tmp_path, policy=policy_name, trajectories=1,
                                      cutout=cutout), small_data, [[_CPUS[0]]])
    log_probs = ohl.outer.sampling_log_probs(0) or [None]
    batches = pipeline_testing.period_batches(ohl.population.train_data, 0, 0, log_probs[0])
    return next(iter(batches)).images.numpy()

  plain = first_batch("none")
  np.testing.assert_array_equal(plain, first_batch("cutout", cutout=0))
  cut = first_batch("cutout")
  changed = np.any(cut != plain, axis=-1).reshape(len(cut), -1).sum(axis=1)
  assert (changed > 0).all() and (changed <= 16 * 16).all()  # one square per image at most
  for name in ("autoaugment", "randaugment", "trivialaugment"):
    assert not np.array_equal(first_batch(name, cutout=0), plain)


def test_a_missing_or_foreign_policy_file_is_refused_before_anything_is_written(tmp_path,
                                                                                small_data):
  config = _config(tmp_path, policy=f"file:{tmp_path / 'absent.json'}")
  with pytest.raises(ValueError, match=r"--policy=file:.*absent.json: no such file"):
    search.OnlineSearch(config, small_data, [[_CPUS[0]]])
  foreign = tmp_path / "foreign.json"
  foreign.write_text(json.dumps({"elements": [], "probabilities": []}))
  with pytest.raises(ValueError, match=r"foreign.json was written for another search space"):
    search.OnlineSearch(_config(tmp_path, policy=f"file:{foreign}"), small_data, [[_CPUS[0]]])
  assert not os.path.exists(config.model_dir)
