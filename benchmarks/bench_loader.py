"""Throughput of one training epoch: InMemoryLoader vs torchvision's DataLoader + PIL transforms.

Both produce shuffled, augmented (4-pixel zero-padded random crop + horizontal flip) float32
batches in [0, 1] from the same images on the CPU. Uses the full CIFAR-10 training set when the
JPEG archive is available, else the bundled cifar10-mini.

    python benchmarks/bench_loader.py [--archive PATH] [--batch-size 128] [--workers 0 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from agent_lab.data import InMemoryLoader, load_dataset

DEFAULT_ARCHIVE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz"


class PILImages(Dataset):
    """Images kept as HWC uint8 numpy, converted to PIL per item (as torchvision's CIFAR10 does)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def time_epoch(batches) -> tuple[float, int]:
    start = time.perf_counter()
    count = 0
    for x, _ in batches:
        count += x.shape[0]
    return time.perf_counter() - start, count


def load_images(archive: Path):
    if archive.is_file():
        bundle = load_dataset("cifar10", archive)
        return f"CIFAR-10 train from {archive.name}", bundle.train
    return "cifar10-mini train (archive not found)", load_dataset("cifar10-mini").train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE.resolve())
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()

    source, split = load_images(args.archive)
    print(f"data: {source}, {len(split)} images; batch {args.batch_size}; device cpu; "
          f"torch threads {torch.get_num_threads()}; torch {torch.__version__}")

    rows = []
    loader = InMemoryLoader(split.images, split.labels, args.batch_size, seed=0, device="cpu")
    seconds, count = time_epoch(loader.epoch(0))
    rows.append(("InMemoryLoader (tensor ops)", "-", seconds, count))

    pil_transform = transforms.Compose(
        [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
    )
    dataset = PILImages(split.images, split.labels, pil_transform)
    for workers in args.workers:
        baseline = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=workers)
        seconds, count = time_epoch(baseline)
        rows.append(("DataLoader + PIL transforms", str(workers), seconds, count))

    fastest_baseline = max(count / seconds for _, workers, seconds, count in rows if workers != "-")
    ours = rows[0][3] / rows[0][2]
    print(f"\n{'loader':<30} {'workers':>7} {'epoch s':>9} {'images/s':>11} {'InMemory x':>11}")
    for name, workers, seconds, count in rows:
        rate = count / seconds
        print(f"{name:<30} {workers:>7} {seconds:>9.2f} {rate:>11,.0f} {ours / rate:>10.1f}x")
    print(f"\nInMemoryLoader is {ours / fastest_baseline:.1f}x the fastest DataLoader configuration.")


if __name__ == "__main__":
    main()
