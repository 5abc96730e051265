"""Our PGD against torchattacks' PGD (an optional extra: ``pip install -e ".[attacks]"``)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from agent_lab.adversarial import PGD, robust_evaluate

torchattacks = pytest.importorskip("torchattacks")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained():
    """A small BN convnet trained to high clean accuracy on a separable image problem in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    n, classes = 512, 4
    y = torch.arange(n) % classes
    prototypes = 0.5 + 0.2 * (torch.rand(classes, 3, 8, 8, generator=g) - 0.5)
    x = (prototypes[y] + 0.1 * torch.randn(n, 3, 8, 8, generator=g)).clamp(0, 1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 8 * 8, classes))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(150):
        idx = torch.randint(0, n, (64,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    return model, x[:256], y[:256]


def test_same_iterates_as_torchattacks_without_random_start(trained):
    model, x, y = trained
    eps, alpha, steps = 8 / 255, 2 / 255, 10
    ours = PGD(epsilon=eps, step_size=alpha, steps=steps, random_start="none").perturb(model, x, y)
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    # The two projections differ only in rounding (min/max against x±eps vs clamp of the difference).
    assert (ours - theirs).abs().max() <= 1e-6
    with torch.no_grad():
        assert torch.equal(model(ours).argmax(1), model(theirs).argmax(1))


def test_our_pgd_is_at_least_as_strong(trained):
    model, x, y = trained
    eps = 8 / 255
    attack = PGD(epsilon=eps, step_size=2.5 * eps / 20, steps=20)
    ours = robust_evaluate(model, [(x, y)], attack, restarts=3).robust_acc
    torch.manual_seed(0)
    theirs_attack = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / 20, steps=20, random_start=True)
    x_theirs = theirs_attack(x, y)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
        theirs = (clean & (model(x_theirs).argmax(1) == y)).float().mean().item()
    assert clean.float().mean() > 0.9
    assert theirs < clean.float().mean()  # the attack does something on this model
    assert ours <= theirs
