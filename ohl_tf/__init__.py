"""ohl_tf: Online Hyper-parameter Learning for Auto-Augmentation (Lin et al., ICCV 2019)."""

from ohl_tf.learned_augment import LearnedAugment  # the policy-transfer layer, for users
