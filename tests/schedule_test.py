"""Tests of the run's arithmetic: steps, epochs and periods."""

import pytest

from ohl_tf import schedule as schedule_lib


def test_schedule_periods_cover_every_step_once():
  schedule = schedule_lib.Schedule(num_examples=1000, batch_size=64, epochs=3, inner_steps=7)
  assert schedule.steps_per_epoch == 15 and schedule.total_steps == 45
  bounds = [schedule.period(p) for p in range(schedule.num_periods)]
  assert bounds[0] == (0, 7) and bounds[-1] == (42, 45) and len(bounds) == 7
  assert all(end == start for (_, end), (start, _) in zip(bounds, bounds[1:]))
  assert schedule_lib.Schedule(1000, 64, 3).period_steps == 15  # inner_steps 0: one epoch
  with pytest.raises(ValueError, match=r"period 7 outside \[0, 7\)"):
    schedule.period(7)


def test_schedule_rejects_a_batch_larger_than_the_data():
  with pytest.raises(ValueError, match="--batch_size=64 exceeds the 50 training images"):
    schedule_lib.Schedule(num_examples=50, batch_size=64, epochs=1)


@pytest.mark.parametrize("settings", [dict(batch_size=0, epochs=1), dict(batch_size=8, epochs=0),
                                      dict(batch_size=8, epochs=1, inner_steps=-1)])
def test_schedule_rejects_invalid_settings(settings):
  with pytest.raises(ValueError, match="Invalid schedule"):
    schedule_lib.Schedule(num_examples=100, **settings)
