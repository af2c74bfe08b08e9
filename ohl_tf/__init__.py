"""ohl_tf: Online Hyper-parameter Learning for Auto-Augmentation (Lin et al., ICCV 2019)."""

__all__ = ["LearnedAugment"]


def __getattr__(name):
  """`ohl_tf.LearnedAugment`, the policy-transfer layer for users, imported on first use.

  Lazily, because importing it loads TensorFlow: `python -m ohl_tf.main` runs this file first,
  and must set TensorFlow's logging up before TensorFlow loads (`ohl_tf.console`).
  """
  if name == "LearnedAugment":
    from ohl_tf.learned_augment import LearnedAugment  # pylint: disable=g-import-not-at-top
    return LearnedAugment
  raise AttributeError(f"module 'ohl_tf' has no attribute {name!r}")
