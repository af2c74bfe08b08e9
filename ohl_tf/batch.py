"""What the training pipeline hands a trajectory each step (docs/pipeline.md).

One structure whatever `--augment_on`: under "host" the batch arrives finished (standardised
float32 images, nothing left to apply); under "device" it arrives as uint8 images with the
per-image parameters of what each replica still applies to its shard
(`pipeline.TrainPipeline.device_augmentation`). A `Batch` is a namedtuple, so it nests through
`tf.data`, `tf.distribute`'s dataset splitting and `strategy.run` as any tuple does.
"""

import typing


class Batch(typing.NamedTuple):
  """One step's batch of one trajectory (or a replica's shard of it).

  Attributes:
    images: [B,S,S,3]; float32 and standardised when `finished`, else uint8 before the sampled
      operations, Cutout and standardisation.
    labels: int32 [B].
    ops: int32 [B], the operation each image was drawn (paper eq. 7), `pipeline.NO_OPERATION`
      where none: the trajectory counts them for the outer step whether it or the host applies
      them.
    augmentation: the per-image parameters still to apply, {} when `finished`; under
      --augment_on=device {"signs": int32 [B,2]} and, with Cutout, "cutout_centres": int32 [B,2].
  """
  images: typing.Any
  labels: typing.Any
  ops: typing.Any
  augmentation: dict

  @property
  def finished(self):
    """Whether the images are what the network trains on (nothing left to apply)."""
    return not self.augmentation
