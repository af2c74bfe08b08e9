"""policy.json: what the trainer writes is what it and LearnedAugment read back."""

import json

import numpy as np
import pytest

from ohl_tf import augment
from ohl_tf import export
from ohl_tf import policy
from ohl_tf import policy_file


def _theta():
  return np.random.default_rng(0).normal(size=augment.NUM_OPERATIONS).astype(np.float32)


def test_a_learned_policy_round_trips_through_the_file(tmp_path):
  path = tmp_path / "policy.json"
  counts = np.arange(augment.NUM_OPERATIONS, dtype=np.float64)
  export.write_json(path, policy_file.learned_payload(_theta(), counts))
  probabilities = policy_file.read(str(path))
  np.testing.assert_allclose(probabilities, policy.operation_probabilities(_theta()), rtol=1e-6)
  payload = json.loads(path.read_text())
  assert payload["lineage"]["operations"] == int(counts.sum())
  np.testing.assert_allclose(np.ravel(payload["lineage"]["probabilities"]),
                             counts / counts.sum())


def test_a_fixed_policy_keeps_its_source_and_reads_back(tmp_path):
  p = np.full(augment.NUM_OPERATIONS, 1 / augment.NUM_OPERATIONS)
  path = tmp_path / "policy.json"
  export.write_json(path, policy_file.fixed_payload(p, "runs/a/policy.json"))
  assert json.loads(path.read_text())["source"] == "runs/a/policy.json"
  np.testing.assert_allclose(policy_file.read(str(path)), p)


def test_log_probabilities_check_and_keep_zero_as_never_drawn():
  p = np.zeros(augment.NUM_OPERATIONS)
  p[[3, 40]] = 0.5
  log_p = policy_file.log_probabilities(p)
  assert log_p.dtype == np.float32 and np.isneginf(log_p[0])
  np.testing.assert_allclose(log_p[[3, 40]], np.log(0.5))
  with pytest.raises(ValueError, match="probabilities must sum to 1"):
    policy_file.log_probabilities(p * 2)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("[1, 2]", "expected a JSON object"),
    ("{not json", "not valid JSON"),
    ('{"elements": []}', "it has no `probabilities`"),
])
def test_a_bad_file_is_refused_naming_it(tmp_path, content, message):
  path = tmp_path / "policy.json"
  if content is not None:
    path.write_text(content)
  with pytest.raises(ValueError, match=message):
    policy_file.read(str(path))


def test_an_empty_lineage_is_left_out():
  assert policy_file.lineage_payload(np.zeros(augment.NUM_OPERATIONS)) is None
  assert "lineage" not in policy_file.learned_payload(_theta(), np.zeros(augment.NUM_OPERATIONS))


def test_the_file_records_its_search_space_and_reads_back_in_it(tmp_path):
  space = augment.PAPER_IDENTITY
  theta = np.random.default_rng(1).normal(size=space.num_operations).astype(np.float32)
  counts = np.arange(space.num_operations, dtype=np.float64)
  path = tmp_path / "policy.json"
  export.write_json(path, policy_file.learned_payload(theta, counts))
  payload = json.loads(path.read_text())
  assert payload["search_space"] == "paper_identity"
  assert payload["elements"][36] == {"name": "Identity", "magnitude": None}
  assert np.shape(payload["probabilities"]) == (37, 37)
  assert np.shape(payload["lineage"]["probabilities"]) == (37, 37)
  np.testing.assert_allclose(policy_file.read(str(path), space),
                             policy.operation_probabilities(theta), rtol=1e-6)
  np.testing.assert_allclose(policy_file.read(str(path)), policy_file.read(str(path), space))
  fixed = tmp_path / "fixed.json"
  export.write_json(fixed, policy_file.fixed_payload(policy_file.read(str(path)), str(path)))
  assert json.loads(fixed.read_text())["search_space"] == "paper_identity"
  paper = tmp_path / "paper.json"
  export.write_json(paper, policy_file.learned_payload(_theta()))
  assert json.loads(paper.read_text())["search_space"] == "paper"


def test_a_file_of_another_search_space_is_refused_naming_both_and_the_flag(tmp_path):
  path = tmp_path / "policy.json"
  export.write_json(path, policy_file.learned_payload(_theta()))
  with pytest.raises(ValueError, match=r"policy.json was learned in --search_space=paper \(1296 "
                                       r"operations\), but this run's is "
                                       r"--search_space=paper_identity \(1369\): run with "
                                       r"--search_space=paper to use it"):
    policy_file.read(str(path), augment.PAPER_IDENTITY)
  identity = tmp_path / "identity.json"
  theta = np.zeros(augment.PAPER_IDENTITY.num_operations, np.float32)
  export.write_json(identity, policy_file.learned_payload(theta))
  with pytest.raises(ValueError, match=r"learned in --search_space=paper_identity.*this run's is "
                                       r"--search_space=paper \(1296\)"):
    policy_file.read(str(identity), augment.PAPER)


def test_a_file_from_before_the_search_space_field_is_read_as_paper(tmp_path):
  path = tmp_path / "policy.json"
  payload = policy_file.learned_payload(_theta())
  del payload["search_space"]  # written before the field existed
  export.write_json(path, payload)
  np.testing.assert_allclose(policy_file.read(str(path), augment.PAPER),
                             policy.operation_probabilities(_theta()), rtol=1e-6)
  with pytest.raises(ValueError, match=r"learned in --search_space=paper "):
    policy_file.read(str(path), augment.PAPER_IDENTITY)
  # The paper's 36 elements under a claim of paper_identity: its elements are checked too.
  export.write_json(path, {**payload, "search_space": "paper_identity"})
  with pytest.raises(ValueError, match=r"element 36 is <missing>, but element 36 of "
                                       r"--search_space=paper_identity is"):
    policy_file.read(str(path))
  export.write_json(path, {**payload, "search_space": "mine"})
  with pytest.raises(ValueError, match=r"search space this version does not know.*'mine'"):
    policy_file.read(str(path))
