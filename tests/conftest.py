import os

# Parallel test workers (pytest-xdist) each running multi-threaded torch on the same cores spend
# most of their time in OpenMP spin-waits; give every worker (and the notebook kernels it starts,
# which inherit the environment) an equal share of the cores instead.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _share = str(max(1, (os.cpu_count() or 1) // _workers))
    os.environ["OMP_NUM_THREADS"] = _share
    os.environ["MKL_NUM_THREADS"] = _share

import pytest  # noqa: E402
import torch  # noqa: E402

if _workers > 1:
    torch.set_num_threads(int(_share))

from agent_lab import RunConfig

# Small, fast config on the deterministic synthetic data set: 512 training images, 8 steps/epoch.
TINY = RunConfig(dataset="synthetic", model="vgg16", width=0.125, epochs=3, batch_size=64, lr=0.05,
                 lr_schedule="step", lr_milestones=(0.5,), lr_factors=(0.1,), device="cpu", seed=3)


@pytest.fixture(scope="session")
def tiny_config() -> RunConfig:
    return TINY


@pytest.fixture(autouse=True)
def _restore_thread_count():
    # Some tests pin the thread count; every test starts from the session's count.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_imagenet(tmp_path_factory):
    """Two classes of small random PNGs in the ImageNet folder layout (train 2 x 6, val 2 x 2)."""
    from torchvision.io import encode_png

    root = tmp_path_factory.mktemp("imagenet")
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", 6), ("val", 2)):
        for wnid in ("n01", "n02"):
            (root / split / wnid).mkdir(parents=True)
            for k in range(count):
                image = torch.randint(0, 256, (3, 20, 26), dtype=torch.uint8, generator=generator)
                (root / split / wnid / f"{k}.png").write_bytes(encode_png(image).numpy().tobytes())
    return root


@pytest.fixture
def imagenet_config(tiny_imagenet):
    """``imagenet_config(**changes)``: a ResNet-18 (width 1/8) run on ``tiny_imagenet``, 2 steps of 6
    examples per epoch."""
    base = RunConfig(dataset="imagenet", data_root=str(tiny_imagenet), model="resnet18", width=0.125, epochs=1,
                     batch_size=6, eval_batch_size=4, device="cpu", seed=3, lr=0.002, lr_schedule="constant")
    return lambda **changes: base.replace(**changes)
