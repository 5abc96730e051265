"""Fixed facts about the named data sets: class names and normalization statistics."""

from __future__ import annotations

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

# Per-channel (mean, std) in [0, 1] pixel space, as commonly used for each data set.
NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

# Whether a horizontal flip belongs to the training augmentation (not for digits).
FLIP = {"cifar10": True, "cifar100": True, "svhn": False, "imagenet": True}
