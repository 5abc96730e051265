"""Behaviour pinned: short runs of the main configurations reproduce stored histories.

The expected values in ``tests/data/pinned_histories.json`` were written by this file
(``python tests/test_pinned_histories.py --write``) and are the reference any restructuring of the
library must keep: same losses, accuracies, learning rates, pass counts and AGENT/sparsity columns
(times aside). The runs use one CPU thread, so the reference does not depend on the core count.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from agent_lab import RunConfig, train

EXPECTED = Path(__file__).resolve().parent / "data" / "pinned_histories.json"
TIMES = ("wall_time", "eval_time")
SMALL = dict(dataset="cifar10-mini", train_subset=512, test_subset=256, width=0.125, epochs=2, batch_size=64,
             device="cpu", seed=1)
CONFIGS = {
    "sgd-dense": RunConfig(**SMALL),
    "agent-dense": RunConfig(optimizer="agent", **SMALL),
    "sgd-rigl": RunConfig(pipeline="rigl", sparsity=0.9, update_every=4, **SMALL),
    "agent-rigl": RunConfig(optimizer="agent", pipeline="rigl", sparsity=0.9, update_every=4, **SMALL),
    "sgd-bsr-at": RunConfig(pipeline="bsr", sparsity=0.9, adversarial="at", attack_steps=3, robust_eval_subset=64,
                            **SMALL),
    "agent-bsr-at": RunConfig(optimizer="agent", pipeline="bsr", sparsity=0.9, adversarial="at", attack_steps=3,
                              robust_eval_subset=64, **SMALL),
}


def history_of(config: RunConfig, out: Path) -> pd.DataFrame:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(config, out=out, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert result.status == "completed"
    return result.history.drop(columns=list(TIMES))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_history_equals_the_pinned_one(name, tmp_path):
    expected = json.loads(EXPECTED.read_text())[name]
    assert expected["config_hash"] == CONFIGS[name].config_hash(), "the config changed: rewrite the reference"
    history = history_of(CONFIGS[name], tmp_path)
    assert list(history.columns) == expected["columns"]
    for column, values in zip(expected["columns"], zip(*expected["rows"])):
        got = history[column].tolist()
        for epoch, (a, b) in enumerate(zip(got, values), start=1):
            if isinstance(b, float) and math.isnan(b):
                assert isinstance(a, float) and math.isnan(a), (name, column, epoch)
            else:  # bit-equal on the machine that wrote it; 1e-6 leaves room for another CPU's kernels
                assert a == pytest.approx(b, rel=1e-6, abs=1e-9), (name, column, epoch)


def write_reference(out: Path) -> None:
    reference = {}
    for name, config in CONFIGS.items():
        history = history_of(config, out)
        reference[name] = {"config_hash": config.config_hash(), "columns": list(history.columns),
                           "rows": history.astype(object).values.tolist()}
    EXPECTED.parent.mkdir(parents=True, exist_ok=True)
    EXPECTED.write_text(json.dumps(reference, indent=1, default=float) + "\n")


if __name__ == "__main__":  # python tests/test_pinned_histories.py --write
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_pinned_histories.py --write")
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        write_reference(Path(folder))
    print(f"wrote {EXPECTED}")
