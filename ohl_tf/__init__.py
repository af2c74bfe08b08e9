"""ohl_tf: Online Hyper-parameter Learning for Auto-Augmentation (Lin et al., ICCV 2019)."""
