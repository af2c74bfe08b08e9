"""The run's arithmetic: how its training steps divide into epochs and periods (docs/loop.md).

A period is the I inner steps between two outer steps (paper Algorithm 1); the trainer, the input
pipeline (`pipeline.TrainPipeline`), the progress line and the outer state all count with one
`Schedule`.
"""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Schedule:
  """How the run's training steps divide into epochs and periods of I inner steps.

  Attributes:
    num_examples: training images (the validation split already removed).
    batch_size: images per step of one trajectory (over all its replicas).
    epochs: passes over the training images.
    inner_steps: I, inner steps per outer step (paper Algorithm 1); 0 means one epoch.
  """
  num_examples: int
  batch_size: int
  epochs: int
  inner_steps: int = 0

  def __post_init__(self):
    if self.batch_size < 1 or self.epochs < 1 or self.inner_steps < 0:
      raise ValueError(f"Invalid schedule: {self}")
    if self.num_examples < self.batch_size:
      raise ValueError(f"--batch_size={self.batch_size} exceeds the {self.num_examples} training "
                       "images (after the validation split): lower it or use more data.")

  @property
  def steps_per_epoch(self):
    return self.num_examples // self.batch_size  # the remainder of each epoch is dropped

  @property
  def total_steps(self):
    return self.epochs * self.steps_per_epoch

  @property
  def period_steps(self):
    return self.inner_steps or self.steps_per_epoch

  @property
  def num_periods(self):
    return math.ceil(self.total_steps / self.period_steps)

  def period(self, index):
    """(first step, end step) of period `index`; the last period may be shorter."""
    if not 0 <= index < self.num_periods:
      raise ValueError(f"period {index} outside [0, {self.num_periods})")
    start = index * self.period_steps
    return start, min(start + self.period_steps, self.total_steps)
