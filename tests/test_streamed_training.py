"""Training on a streamed data set (ImageNet layout): shards, full-data passes, SGD and AGENT.
(Over 2 ranks: tests/test_data_parallel.py.)"""
import pytest
import torch

from agent_lab import train
from agent_lab.data import StreamingLoader, load_dataset
from agent_lab.data.full_pass import full_pass_like


def test_shards_of_a_streamed_batch_make_the_global_batch_and_full_passes_draw_their_own(tiny_imagenet):
    bundle = load_dataset("imagenet", tiny_imagenet, image_size=16)
    whole = StreamingLoader(bundle.train, 5, seed=3, image_size=16)
    parts = [StreamingLoader(bundle.train, 5, seed=3, image_size=16, shard=(r, 2)) for r in range(2)]
    for step in range(len(whole)):  # 5, 5, 2 examples: slices of 3+2, 3+2, 1+1
        x, y = whole.batch(1, step)
        pieces = [part.batch(1, step) for part in parts]
        assert [len(p[1]) for p in pieces] == [(len(y) + 1) // 2, len(y) // 2]
        assert torch.equal(torch.cat([p[0] for p in pieces]), x) and torch.equal(torch.cat([p[1] for p in pieces]), y)
    assert torch.equal(parts[1].labels, bundle.train.labels) and len(parts[1]) == len(whole)
    full = full_pass_like(whole, 12, augment=True)
    assert full.stream == "full-pass" and full.source is whole.source and full.shard == (0, 1)
    train_x, _ = StreamingLoader(bundle.train, 12, seed=3, image_size=16).batch(1, 0)
    full_x, _ = full.batch(1, 0)
    assert not torch.equal(train_x, full_x)  # another order and other crops than the training epoch
    assert sorted(full.batch(1, 0)[1].tolist()) == sorted(bundle.train.labels.tolist())  # still every example
    with pytest.raises(ValueError, match="stream: 'test' is invalid; valid choices: train, full-pass"):
        StreamingLoader(bundle.train, 4, stream="test")
    with pytest.raises(TypeError, match="expected an InMemoryLoader or a StreamingLoader, got list"):
        full_pass_like([], 4, augment=False)


def test_sgd_and_agent_train_on_a_streamed_data_set(imagenet_config, tmp_path):
    sgd = train(imagenet_config(), out=tmp_path, progress=False)
    agent = train(imagenet_config(optimizer="agent", epochs=2), out=tmp_path, progress=False)
    assert sgd.status == agent.status == "completed"
    # 12 examples a training epoch; AGENT adds one full pass over them (forward and backward) per epoch
    # and the forward pass at the snapshot for ĉ* from its second refresh on
    assert sgd.history["fwd_bwd"].tolist() == [12]
    assert agent.history["fwd_bwd"].diff().iloc[-1] > agent.history["fwd_bwd"].iloc[0] > 12
    assert agent.history["c_hat_star"].notna().iloc[-1]
