"""The numbers behind the README's run-store paragraph, measured in one run.

1. SHA-256 throughput of ``agent_lab.runs.file_digest`` on a 256 MiB file (what every save and every
   served run pays per byte of checkpoint), and the time of one full save (checkpoint, history,
   meta.json with digests) of a width-1 VGG-16 AGENT-sized checkpoint beside the time to write it.
2. The test loss of a healthy run in its first epochs (why a large finite test loss is not taken
   for divergence): synthetic data, VGG-16 x0.125, lr 0.1, seed 0, 4 epochs.

    python benchmarks/bench_run_store.py
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from agent_lab import RunConfig, train
from agent_lab.models import build_model
from agent_lab.runs import RunFolder, file_digest, save_checkpoint


def hashing(folder: Path) -> None:
    path = folder / "blob.bin"
    path.write_bytes(os.urandom(256 << 20))
    start = time.perf_counter()
    file_digest(path)
    seconds = time.perf_counter() - start
    print(f"sha256 of 256 MiB: {seconds:.3f} s ({256 / seconds:.0f} MiB/s)")

    model = build_model("vgg16", 10, width=1.0)
    # model, momentum, AGENT's snapshot and full gradient: four distinct copies of the weights
    copies = {part: {name: tensor.clone() for name, tensor in model.state_dict().items()}
              for part in ("model", "momentum", "snapshot", "full_gradient")}
    checkpoint = {**copies, "state": {"history": [{"epoch": 1, "train_loss": 1.0}], "epoch": 1}}
    start = time.perf_counter()
    save_checkpoint(folder / "plain.pt", checkpoint)  # the write alone (it hashes too: subtract below)
    write = time.perf_counter() - start
    size = (folder / "plain.pt").stat().st_size
    run = RunFolder(folder / "run")
    run.path.mkdir()
    start = time.perf_counter()
    run.save(checkpoint=checkpoint)
    save = time.perf_counter() - start
    print(f"checkpoint of {size / 2**20:.0f} MiB: save with digests {save:.2f} s; "
          f"hashing alone would be {size / 2**20 / (256 / seconds):.2f} s of it (first write {write:.2f} s)")


def healthy_test_loss(folder: Path) -> None:
    config = RunConfig(dataset="synthetic", width=0.125, epochs=4, batch_size=64, device="cpu", seed=0)
    history = train(config, out=folder, progress=False).history
    print("healthy run (synthetic, VGG-16 x0.125, lr 0.1, seed 0):")
    print(history[["epoch", "train_loss", "test_loss", "test_acc"]].to_string(index=False))


if __name__ == "__main__":
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        hashing(Path(tmp))
        healthy_test_loss(Path(tmp))
