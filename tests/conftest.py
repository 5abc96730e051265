import pytest
import torch

from agent_lab import RunConfig

# Small, fast config on the deterministic synthetic data set: 512 training images, 8 steps/epoch.
TINY = RunConfig(dataset="synthetic", model="vgg16", width=0.125, epochs=3, batch_size=64, lr=0.05,
                 lr_schedule="step", lr_milestones=(0.5,), lr_factors=(0.1,), device="cpu", seed=3)


@pytest.fixture
def tiny_config() -> RunConfig:
    return TINY


@pytest.fixture(autouse=True)
def _single_thread_determinism():
    # Exact-equality tests compare runs in one process; fixing the thread count keeps CPU kernels'
    # reduction order the same across the compared runs.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
