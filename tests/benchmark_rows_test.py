"""The rows of the accuracy benchmark (benchmarks/accuracy_rows.py): which trainer flags make a
row, and which recorded runs an equal-compute row picks from."""

import pytest

from benchmarks import accuracy_rows


def test_known_rows_train_one_network_except_uniform_n_and_ohl():
  rows = accuracy_rows.known(4)
  assert rows["none"].flags == ("--policy=none", "--trajectories=1")
  assert rows["uniform N=4"].flags == ("--policy=uniform", "--trajectories=4")
  assert rows["ohl"].flags == ("--policy=ohl", "--trajectories=4")
  best = rows["best of 4 autoaugment"]
  assert (best.picks_from, best.recorded_as) == (4, "autoaugment")
  assert best.flags == rows["autoaugment"].flags


def test_row_flags_add_flags_to_a_known_row_or_make_a_new_one():
  ohl, sigma3 = accuracy_rows.requested(
      ["ohl", "ohl s3"], ["ohl=--es_sigma=2 --reward=loss", "ohl s3<ohl=--es_sigma=3"], 4)
  assert ohl.flags[-2:] == ("--es_sigma=2", "--reward=loss")
  # A new row starts from the known row as --row_flags has changed it so far.
  assert sigma3.flags[-3:] == ("--es_sigma=2", "--reward=loss", "--es_sigma=3")
  assert sigma3.recorded_as == "ohl s3"


def test_a_label_may_hold_an_equals_sign_and_a_new_row_may_add_no_flags():
  uniform, none = accuracy_rows.requested(
      ["uniform N=4 aa", "none v1000"],
      ["uniform N=4 aa<uniform N=4=--search_space=autoaugment_cifar10", "none v1000<none="], 4)
  assert uniform.flags == ("--policy=uniform", "--trajectories=4",
                           "--search_space=autoaugment_cifar10")
  assert (none.flags, none.recorded_as) == (("--policy=none", "--trajectories=1"), "none v1000")


def test_a_new_equal_compute_row_picks_from_runs_of_its_own_named_row():
  plain, best = accuracy_rows.requested(
      ["autoaugment r20", "best of 4 autoaugment r20"],
      ["autoaugment r20<autoaugment=--model=resnet20",
       "best of 4 autoaugment r20<best of 4 autoaugment=--model=resnet20"], 4)
  # Recorded under the plain row, with its flags: the two rows share the run of each seed, and
  # no resnet20 run is recorded as (and mixed into) the resnet8 row 'autoaugment'.
  assert best.recorded_as == plain.recorded_as == "autoaugment r20"
  assert best.flags == plain.flags
  assert best.picks_from == 4


def test_a_misnamed_equal_compute_row_is_refused_with_the_name_to_give():
  with pytest.raises(ValueError, match=r"name it 'best of 4 <that row>'"):
    accuracy_rows.requested(["aa r20"], ["aa r20<best of 4 autoaugment=--model=resnet20"], 4)


def test_unknown_rows_are_named_with_the_known_ones():
  with pytest.raises(ValueError, match=r"unknown row 'nope'.*Known: \[.*'autoaugment'"):
    accuracy_rows.requested(["x"], ["x<nope=--lr=1"], 4)
  with pytest.raises(ValueError, match=r"--rows: unknown \['typo'\]"):
    accuracy_rows.requested(["none", "typo"], [], 4)
