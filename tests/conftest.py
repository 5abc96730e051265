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


@pytest.fixture
def tiny_config() -> RunConfig:
    return TINY


@pytest.fixture(autouse=True)
def _restore_thread_count():
    # Some tests pin the thread count; every test starts from the session's count.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
