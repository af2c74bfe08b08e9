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
