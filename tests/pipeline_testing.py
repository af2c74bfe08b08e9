"""One period's training batches, through the trainer's own entry point
(`pipeline.TrainPipeline.run_dataset`), for the tests that look at a period's data.

Example:
  >>> images, labels, ops = pipeline_testing.collect(
  ...     pipeline_testing.period_batches(train_pipeline, 2, stream=1, log_probs=log_p))
"""

import numpy as np

from ohl_tf import pipeline


def period_batches(train_pipeline, period, stream, log_probs=None):
  """The `batch.Batch`es of one trajectory's period `period`, as a run that starts or resumes
  there gets them: its `run_dataset` from that period, fed `log_probs` (log p [K]; None: no OHL
  operation) and then closed, so the dataset ends with the period. One pass: the feed is spent.
  """
  start, end = train_pipeline.schedule.period(period)
  feed = None
  if log_probs is not None:
    feed = pipeline.SamplingFeed(capacity=1, search_space=train_pipeline.search_space)
    feed.put(log_probs)
    feed.close()  # the next period's log p never comes: the dataset ends (`SamplingFeed.close`)
  return train_pipeline.run_dataset(period, stream, feed).take(end - start)


def collect(batches):
  """(images, labels, ops) of finished `batch.Batch`es, each concatenated over the batches."""
  batches = list(batches)
  assert all(batch.finished for batch in batches)
  return tuple(np.concatenate([getattr(batch, field).numpy() for batch in batches])
               for field in ("images", "labels", "ops"))
