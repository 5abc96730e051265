"""Tests of agent_lab.data: data sets, the bundled CIFAR-10 subset and the replayable loaders."""

import gzip
import io
import os
import random
import re
import socket
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.io import decode_jpeg, encode_jpeg, encode_png

from agent_lab.data import (
    DATASET_NAMES,
    DataChecksumError,
    DataUnavailableError,
    InMemoryLoader,
    Split,
    StreamingLoader,
    build_cifar10_mini,
    load_dataset,
    make_loaders,
)
from agent_lab.data import archive_dataset, mini, paths
from agent_lab.data.augment import crop_flip
from agent_lab.data.bundle import channel_stats
from agent_lab.data.catalog import CIFAR10_CLASSES
from agent_lab.data.stratify import stratified_indices

# The tests write their image fixtures with torchvision.io, which torchvision 0.29 flags as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ARCHIVE_ENV_VAR = "CIFAR10_ARCHIVE"
DEFAULT_ARCHIVE = PROJECT_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
ARCHIVE = Path(os.environ.get(ARCHIVE_ENV_VAR) or DEFAULT_ARCHIVE).expanduser()
needs_archive = pytest.mark.skipif(
    not ARCHIVE.is_file(),
    reason=f"full CIFAR-10 JPEG archive not found at {ARCHIVE}; set {ARCHIVE_ENV_VAR}=/path/to/cifar10-jpeg.tar.gz",
)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(paths.ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def mini_bundle():
    return load_dataset("cifar10-mini")


def random_images(n, channels=3, height=8, width=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, height, width), dtype=torch.uint8, generator=generator)


def reference_crop(image, row, col, flipped, pad):
    """One image cropped from its zero-padded copy, written out by hand."""
    channels, height, width = image.shape
    padded = torch.zeros(channels, height + 2 * pad, width + 2 * pad, dtype=image.dtype)
    padded[:, pad:pad + height, pad:pad + width] = image
    out = padded[:, row:row + height, col:col + width]
    return out.flip(-1) if flipped else out


def write_tar(path, members):
    """A .tar.gz holding ``{name: bytes}``."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def cifar_like_archive(path, per_split=None, classes=CIFAR10_CLASSES):
    """A tiny archive in the cifar10-jpeg layout; returns it and the images it holds."""
    per_split = per_split or {"train": 3, "test": 2}
    members, images = {}, {}
    for split, count in per_split.items():
        for label, name in enumerate(classes):
            for k in range(count):
                image = random_images(1, height=32, width=32, seed=label * 100 + k + len(split))[0]
                members[f"{split}/{name}/{k:04d}.jpg"] = encode_jpeg(image, quality=95).numpy().tobytes()
                images[split, name, k] = image
    return write_tar(path, members), members


# --- cifar10-mini -------------------------------------------------------------------------------

def test_mini_has_the_documented_shapes_labels_and_classes(mini_bundle):
    b = mini_bundle
    assert b.name == "cifar10-mini" and b.num_classes == 10 and b.classes == list(CIFAR10_CLASSES)
    assert b.train.images.shape == (4000, 3, 32, 32) and b.train.images.dtype == torch.uint8
    assert b.test.images.shape == (1000, 3, 32, 32) and b.test.labels.dtype == torch.int64
    assert b.train.labels.bincount().tolist() == [400] * 10
    assert b.test.labels.bincount().tolist() == [100] * 10
    assert b.flip and b.image_size == 32
    assert b.mean == (0.4914, 0.4822, 0.4465) and b.std == (0.2470, 0.2435, 0.2616)
    mean, _ = channel_stats(b.train.images)  # real CIFAR images, not noise
    assert np.allclose(mean, b.mean, atol=0.02)


def test_mini_file_matches_its_recorded_checksum():
    shipped = paths.REPO_DATA_DIR / mini.MINI_FILE_NAME
    assert mini.file_sha256(shipped) == mini.MINI_SHA256
    assert shipped.stat().st_size < 6_000_000


def test_corrupt_mini_file_is_refused_with_rebuild_instructions(tmp_path, monkeypatch):
    data = bytearray((paths.REPO_DATA_DIR / mini.MINI_FILE_NAME).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / mini.MINI_FILE_NAME).write_bytes(bytes(data))
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    with pytest.raises(DataChecksumError) as caught:
        load_dataset("cifar10-mini")
    message = str(caught.value)
    assert str(tmp_path / mini.MINI_FILE_NAME) in message and mini.MINI_SHA256 in message
    assert "python -m agent_lab.data.mini" in message


def test_missing_mini_file_names_the_places_searched(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setattr(paths, "REPO_DATA_DIR", tmp_path / "repo")
    with pytest.raises(DataUnavailableError, match="python -m agent_lab.data.mini") as caught:
        load_dataset("cifar10-mini")
    assert str(tmp_path / "env") in str(caught.value) and str(tmp_path / "repo") in str(caught.value)


def test_mini_builder_is_deterministic_and_keeps_the_first_files(tmp_path):
    archive, members = cifar_like_archive(tmp_path / "tiny.tar.gz")
    first = build_cifar10_mini(archive, tmp_path / "a.npz", train_per_class=2, test_per_class=1)
    second = build_cifar10_mini(archive, tmp_path / "b.npz", train_per_class=2, test_per_class=1)
    assert first == second and (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    train, test, classes = mini.read_jpeg_npz((tmp_path / "a.npz").read_bytes())
    assert classes == list(CIFAR10_CLASSES) and train.labels.tolist() == [c for c in range(10) for _ in range(2)]
    expected = torch.stack([decode_jpeg(torch.frombuffer(bytearray(members[f"train/{c}/{k:04d}.jpg"]), dtype=torch.uint8))
                            for c in CIFAR10_CLASSES for k in range(2)])
    assert torch.equal(train.images, expected)
    assert len(test) == 10
    with pytest.raises(ValueError, match="fewer than train_per_class=5"):
        build_cifar10_mini(archive, tmp_path / "c.npz", train_per_class=5)


# --- augmentation and the in-memory loader ------------------------------------------------------

def test_crop_flip_equals_a_per_image_reference():
    images = random_images(12, height=7, width=9)
    pad = 3
    rows = torch.tensor([0, 6, 3, 1, 5, 2, 0, 6, 4, 3, 6, 0])
    cols = torch.tensor([6, 0, 3, 2, 5, 1, 0, 6, 4, 3, 0, 6])
    flips = torch.tensor([i % 3 == 0 for i in range(12)])
    out = crop_flip(images, rows, cols, flips, pad)
    for i in range(12):
        assert torch.equal(out[i], reference_crop(images[i], int(rows[i]), int(cols[i]), bool(flips[i]), pad))


def matching_crops(source, output, pad):
    """Every (row, col, flipped) whose reference crop of ``source`` equals ``output``."""
    return [(r, c, f) for r in range(2 * pad + 1) for c in range(2 * pad + 1) for f in (False, True)
            if torch.equal(reference_crop(source, r, c, f, pad), output)]


def test_loader_batches_are_padded_crops_and_flips_of_their_source_images():
    images = random_images(40, height=8, width=10)
    loader = InMemoryLoader(images, torch.arange(40), 16, pad=2, seed=5)
    seen = set()
    for x, y in loader.epoch(3):
        assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        as_uint8 = (x * 255).round().to(torch.uint8)
        for out, index in zip(as_uint8, y.tolist()):
            found = matching_crops(images[index], out, pad=2)
            assert len(found) == 1, f"image {index} is not exactly one crop/flip of its source"
            seen.add(found[0])
    assert {f for _, _, f in seen} == {False, True}
    assert len({(r, c) for r, c, _ in seen}) > 10


def test_padding_is_zero_and_no_flip_without_flip():
    images = torch.full((64, 3, 6, 6), 255, dtype=torch.uint8)
    images[:, :, :, 0] = 7  # a marked left column shows whether any flip happened
    loader = InMemoryLoader(images, torch.zeros(64, dtype=torch.long), 64, pad=4, flip=False, seed=1)
    x, _ = loader.batch(0, 0)
    values = set((x * 255).round().to(torch.int64).unique().tolist())
    assert values <= {0, 7, 255} and 0 in values
    uint8 = (x * 255).round().to(torch.uint8)
    for out in uint8:
        found = matching_crops(images[0], out, pad=4)
        assert found and all(not flipped for _, _, flipped in found)


def test_batch_replays_iteration_exactly_and_same_seed_loaders_agree():
    images, labels = random_images(50), torch.arange(50) % 7
    loader = InMemoryLoader(images, labels, 8, seed=11)
    twin = InMemoryLoader(images, labels, 8, seed=11)
    for epoch in (0, 4):
        for step, (x, y) in enumerate(loader.epoch(epoch)):
            x_again, y_again = loader.batch(epoch, step)
            x_twin, y_twin = twin.batch(epoch, step)
            assert torch.equal(x, x_again) and torch.equal(y, y_again)
            assert torch.equal(x, x_twin) and torch.equal(y, y_twin)
    other_seed = InMemoryLoader(images, labels, 8, seed=12)
    assert not torch.equal(loader.batch(0, 0)[0], other_seed.batch(0, 0)[0])


def test_epochs_differ_in_order_and_augmentation():
    images = random_images(64)
    shuffled = InMemoryLoader(images, torch.arange(64), 64, augment=False, seed=0)
    assert not torch.equal(shuffled.batch(0, 0)[1], shuffled.batch(1, 0)[1])
    assert sorted(shuffled.batch(0, 0)[1].tolist()) == list(range(64))
    fixed_order = InMemoryLoader(images, torch.arange(64), 64, shuffle=False, seed=0)
    x0, y0 = fixed_order.batch(0, 0)
    x1, y1 = fixed_order.batch(1, 0)
    assert torch.equal(y0, y1) and torch.equal(y0, torch.arange(64)) and not torch.equal(x0, x1)


def test_every_step_gets_its_own_augmentation():
    same = random_images(1).expand(64, -1, -1, -1).contiguous()
    loader = InMemoryLoader(same, torch.zeros(64, dtype=torch.long), 32, shuffle=False, seed=0)
    first, second = loader.batch(0, 0)[0], loader.batch(0, 1)[0]
    assert not torch.equal(first, second)
    assert len({tuple(x.flatten()[:50].tolist()) for x in first}) > 10  # images of a batch differ too


def test_seed_streams_are_separate_even_where_seed_sequences_would_collide():
    from agent_lab.data.seeding import BATCH_AUGMENT, PERMUTATION, derive_seed

    assert np.random.SeedSequence([1, 2]).generate_state(2).tolist() == np.random.SeedSequence([1, 2, 0]).generate_state(2).tolist()
    assert derive_seed(PERMUTATION, 1, 2) != derive_seed(BATCH_AUGMENT, 1, 2, 0)
    assert derive_seed(BATCH_AUGMENT, 1, 2, 0) == derive_seed(BATCH_AUGMENT, 1, 2, 0)


def test_loaders_never_touch_the_global_random_state():
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    images = random_images(30)
    loader = InMemoryLoader(images, torch.arange(30), 7, seed=2)
    for _ in loader.epoch(0):
        pass
    loader.batch(5, 2)
    bundle = load_dataset("synthetic")
    train, test = make_loaders(bundle, 64, seed=0, device="cpu")
    next(iter(train.epoch(1)))
    next(iter(test.epoch(0)))
    bundle.subset(100, 50, seed=3)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
               for a, b in zip(np.random.get_state(), numpy_state))


@pytest.mark.parametrize("n, batch_size, drop_last, sizes", [
    (10, 4, False, [4, 4, 2]),
    (10, 4, True, [4, 4]),
    (12, 4, True, [4, 4, 4]),
    (3, 4, True, []),
    (3, 4, False, [3]),
])
def test_len_and_drop_last(n, batch_size, drop_last, sizes):
    loader = InMemoryLoader(random_images(n), torch.arange(n), batch_size, drop_last=drop_last)
    assert len(loader) == len(sizes) and loader.num_examples == sum(sizes)
    assert [len(y) for _, y in loader.epoch(0)] == sizes
    with pytest.raises(IndexError, match=f"step must be an integer in \\[0, {len(sizes)}\\)"):
        loader.batch(0, len(sizes))


def test_loader_rejects_bad_arguments_by_name():
    images = random_images(4)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        InMemoryLoader(images, torch.arange(4), 0)
    with pytest.raises(ValueError, match="Split.images must be a uint8"):
        InMemoryLoader(images.float(), torch.arange(4), 2)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        InMemoryLoader(images, torch.arange(3), 2)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer, got -1"):
        InMemoryLoader(images, torch.arange(4), 2).batch(-1, 0)
    with pytest.raises(TypeError, match=r"loader.epoch\(e\)"):
        iter(InMemoryLoader(images, torch.arange(4), 2))


def test_eval_loader_keeps_order_and_pixels_and_train_flip_follows_the_bundle(mini_bundle):
    train, test = make_loaders(mini_bundle, 128, eval_batch_size=300, seed=0, device="cpu")
    assert train.flip and train.augment and train.shuffle and len(train) == 32
    assert not test.shuffle and not test.augment and len(test) == 4 and test.num_examples == 1000
    xs, ys = zip(*test)  # the evaluation loader also supports plain iteration
    assert [len(y) for y in ys] == [300, 300, 300, 100]
    assert torch.equal(torch.cat(ys), mini_bundle.test.labels)
    assert torch.equal(torch.cat(xs), mini_bundle.test.images.float() / 255)
    synthetic_train, _ = make_loaders(load_dataset("synthetic"), 64, seed=0, device="cpu")
    assert not synthetic_train.flip


# --- named data sets -----------------------------------------------------------------------------

def test_synthetic_is_deterministic_balanced_and_learnable():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert a.train.images.shape == (512, 3, 32, 32) and a.test.images.shape == (256, 3, 32, 32)
    assert a.train.images.dtype == torch.uint8 and a.num_classes == 10
    assert a.train.labels.bincount().min() >= 51
    assert np.allclose(a.mean, channel_stats(a.train.images)[0])
    # A nearest-class-mean classifier fitted on train separates the test set: the classes are learnable.
    train_x, test_x = a.train.images.flatten(1).float(), a.test.images.flatten(1).float()
    centroids = torch.stack([train_x[a.train.labels == c].mean(0) for c in range(10)])
    accuracy = (torch.cdist(test_x, centroids).argmin(1) == a.test.labels).float().mean()
    assert accuracy > 0.9


def test_subset_is_stratified_deterministic_and_drawn_from_the_split(mini_bundle):
    small = mini_bundle.subset(1000, 200, seed=0)
    assert small.train.labels.bincount().tolist() == [100] * 10
    assert small.test.labels.bincount().tolist() == [20] * 10
    again = mini_bundle.subset(1000, 200, seed=0)
    assert torch.equal(small.train.images, again.train.images)
    assert not torch.equal(small.train.images, mini_bundle.subset(1000, seed=1).train.images)
    assert mini_bundle.subset(n_test=10).train is mini_bundle.train
    chosen = stratified_indices(mini_bundle.train.labels, 1000, seed=0)
    assert torch.equal(small.train.images, mini_bundle.train.images[chosen])
    with pytest.raises(ValueError, match=r"RunConfig.train_subset: 5000 is invalid; .* choose 1\.\.4000"):
        mini_bundle.subset(5000)
    with pytest.raises(ValueError, match=r"RunConfig.test_subset: 0 is invalid; .* choose 1\.\.1000"):
        mini_bundle.subset(n_test=0)


@pytest.mark.parametrize("field, size", [("train_subset", 4000), ("test_subset", 1000)])
def test_subset_larger_than_the_split_names_the_config_field_and_the_range(field, size):
    from agent_lab import RunConfig
    from agent_lab.train import load_bundle

    with pytest.raises(ValueError) as caught:
        load_bundle(RunConfig(dataset="cifar10-mini", **{field: 100000}))
    message = str(caught.value)
    split = "training" if field == "train_subset" else "test"
    assert message.startswith(f"RunConfig.{field}: 100000 is invalid;")
    assert f"the {split} split of cifar10-mini has {size} examples, so choose 1..{size}" in message


def test_stratified_indices_keep_class_proportions_of_unbalanced_labels():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)[torch.randperm(100, generator=torch.Generator().manual_seed(0))]
    chosen = stratified_indices(labels, 50, seed=4)
    assert labels[chosen].bincount().tolist() == [30, 15, 5]
    assert len(set(chosen.tolist())) == 50


def block_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("download", [False, True])
def test_missing_cifar10_offline_raises_a_one_line_actionable_error(tmp_path, monkeypatch, download):
    block_network(monkeypatch)
    root = tmp_path / "nothing here"
    with pytest.raises(DataUnavailableError) as caught:
        load_dataset("cifar10", root, download=download)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("cifar10:")
    for part in (str(root), str(root / "cifar-10-batches-py"), "cifar-10-python.tar.gz",
                 "'cifar10-mini'", "'imagefolder'", "'synthetic'"):
        assert part in message
    assert ("download failed" in message) == download
    assert isinstance(caught.value, RuntimeError)


def test_download_runs_under_a_socket_timeout(tmp_path, monkeypatch):
    import torchvision
    from urllib.error import URLError

    from agent_lab.data import torchvision_sets

    seen = []

    class UnreachableCIFAR10:
        def __init__(self, root, train, download):
            if not download:
                raise RuntimeError("Dataset not found or corrupted.")
            seen.append(socket.getdefaulttimeout())
            raise URLError("timed out")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", UnreachableCIFAR10)
    before = socket.getdefaulttimeout()
    with pytest.raises(DataUnavailableError, match="download failed: URLError"):
        load_dataset("cifar10", tmp_path)
    assert seen == [torchvision_sets.NETWORK_TIMEOUT_S] and socket.getdefaulttimeout() == before


def test_missing_cifar10_archive_is_named(tmp_path):
    with pytest.raises(DataUnavailableError, match=f"cifar10: archive {tmp_path / 'gone.tar.gz'} does not exist"):
        load_dataset("cifar10", tmp_path / "gone.tar.gz")


def test_missing_cifar100_names_its_folder(tmp_path, monkeypatch):
    block_network(monkeypatch)
    with pytest.raises(DataUnavailableError, match="cifar-100-python"):
        load_dataset("cifar100", tmp_path, download=False)


def test_missing_imagefolder_root_is_named(tmp_path):
    with pytest.raises(DataUnavailableError, match=f"imagefolder: root {tmp_path / 'absent'} does not exist"):
        load_dataset("imagefolder", tmp_path / "absent")
    with pytest.raises(DataUnavailableError, match="imagefolder: needs data_root="):
        load_dataset("imagefolder")
    (tmp_path / "train").mkdir()
    with pytest.raises(DataUnavailableError, match=r"must hold train/ and test or val/"):
        load_dataset("imagefolder", tmp_path)


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; choose one of cifar10, cifar100"):
        load_dataset("mnist")
    assert "cifar10-mini" in DATASET_NAMES and "synthetic" in DATASET_NAMES


def write_png_folder(root, test_name="test"):
    """Three classes of PNGs; returns {(split, class, k): image tensor}."""
    written = {}
    for split, count in (("train", 4), (test_name, 2)):
        for label, name in enumerate(("bee", "ant", "cow")):  # sorted order: ant, bee, cow
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(count):
                image = random_images(1, height=8, width=8, seed=label * 10 + k + 100 * len(split))[0]
                (folder / f"{k}.png").write_bytes(encode_png(image).numpy().tobytes())
                written[split, name, k] = image
    return written


def test_imagefolder_round_trip_of_pngs(tmp_path):
    written = write_png_folder(tmp_path)
    (tmp_path / "train" / "ant" / "notes.txt").write_text("not an image")
    bundle = load_dataset("imagefolder", tmp_path, image_size=8)
    assert bundle.classes == ["ant", "bee", "cow"] and bundle.num_classes == 3 and bundle.image_size == 8
    assert bundle.train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    expected = torch.stack([written["train", name, k] for name in bundle.classes for k in range(4)])
    assert torch.equal(bundle.train.images, expected)  # PNG is lossless
    assert bundle.test.images.shape == (6, 3, 8, 8)
    assert bundle.mean == channel_stats(expected)[0] and bundle.std == channel_stats(expected)[1]


def test_imagefolder_accepts_val_converts_gray_and_resizes(tmp_path):
    write_png_folder(tmp_path, test_name="val")
    gray = torch.full((1, 12, 16), 90, dtype=torch.uint8)
    (tmp_path / "train" / "ant" / "gray.png").write_bytes(encode_png(gray).numpy().tobytes())
    bundle = load_dataset("imagefolder", tmp_path, image_size=4)
    assert bundle.train.images.shape == (13, 3, 4, 4) and len(bundle.test) == 6
    gray_index = 4  # sorted file names in ant/: 0.png 1.png 2.png 3.png gray.png
    assert torch.equal(bundle.train.images[gray_index], torch.full((3, 4, 4), 90, dtype=torch.uint8))


def test_cifar10_from_an_archive_is_decoded_once_then_cached(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "cache root"))
    archive, members = cifar_like_archive(tmp_path / "cifar10-jpeg.tar.gz")
    bundle = load_dataset("cifar10", archive)
    assert bundle.train.images.shape == (30, 3, 32, 32) and bundle.test.labels.bincount().tolist() == [2] * 10
    assert bundle.classes == list(CIFAR10_CLASSES) and bundle.mean == (0.4914, 0.4822, 0.4465)
    assert list((tmp_path / "cache root" / "decoded").glob("*.pt"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("the archive was decoded again instead of read from the cache")
    monkeypatch.setattr(archive_dataset, "decode_image_archive", no_decoding)
    cached = load_dataset("cifar10", archive)
    assert torch.equal(cached.train.images, bundle.train.images) and torch.equal(cached.test.labels, bundle.test.labels)


def test_unreadable_decoded_cache_is_replaced_by_decoding_the_archive(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "cache root"))
    archive, _ = cifar_like_archive(tmp_path / "cifar10-jpeg.tar.gz", {"train": 1, "test": 1})
    cache = archive_dataset.cache_path_for(archive, None)
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable decoded-image cache"):
        bundle = load_dataset("cifar10", archive)
    assert len(bundle.train) == 10 and len(bundle.test) == 10
    assert torch.equal(torch.load(cache, weights_only=True)["train_labels"], bundle.train.labels)  # rewritten


def broken_copy(archive, kind, path):
    """Write a ``kind`` of broken copy of the good .tar.gz ``archive`` at ``path``."""
    data = archive.read_bytes()
    if kind == "half":
        content = data[: len(data) // 2]
    elif kind == "tar-cut-short":  # whole gzip stream, but the tar inside stops where a header should start
        tar_bytes = gzip.decompress(data)
        content = gzip.compress(tar_bytes[: tar_bytes.rindex(b"test/truck/0001.jpg")])
    elif kind == "flipped-byte":
        content = bytearray(data)
        content[len(data) // 2] ^= 0xFF
    elif kind == "random-bytes":
        content = random.Random(0).randbytes(4096)
    elif kind == "gzipped-html":
        content = gzip.compress(b"<html>file not found</html>")
    else:
        content = b""
    path.write_bytes(bytes(content))
    return path


@pytest.mark.parametrize("kind, problem", [
    ("half", "is truncated"),
    ("tar-cut-short", "is truncated"),
    ("flipped-byte", "is corrupt"),
    ("random-bytes", "is not gzip-compressed"),
    ("gzipped-html", "is gzip-compressed but not a tar archive"),
    ("empty", "is empty"),
])
def test_broken_cifar10_archive_raises_a_one_line_error_naming_it(tmp_path, monkeypatch, kind, problem):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "cache root"))
    archive, _ = cifar_like_archive(tmp_path / "good.tar.gz", {"train": 2, "test": 2})
    broken = broken_copy(archive, kind, tmp_path / "cifar10-jpeg.tar.gz")
    with pytest.raises(DataUnavailableError) as caught:
        load_dataset("cifar10", broken)
    message = str(caught.value)
    assert message.startswith(f"archive {broken} {problem}") and "\n" not in message
    assert "re-copy or re-download it" in message and "train/<class>/*.jpg and test/<class>/*.jpg" in message
    with pytest.raises(DataUnavailableError, match=re.escape(f"archive {broken} {problem}")):  # the mini builder
        build_cifar10_mini(broken, tmp_path / "mini.npz", train_per_class=1, test_per_class=1)
    assert not list((tmp_path / "cache root").rglob("*.pt"))


def test_damaged_image_in_an_intact_archive_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "cache root"))
    _, members = cifar_like_archive(tmp_path / "good.tar.gz", {"train": 1, "test": 1})
    members["test/cat/0000.jpg"] = members["test/cat/0000.jpg"][:100]
    archive = write_tar(tmp_path / "cifar10-jpeg.tar.gz", members)
    expected = f"cifar10: archive {archive} holds a damaged image in test/"
    with pytest.raises(DataUnavailableError, match=re.escape(expected)):
        load_dataset("cifar10", archive)


def test_cli_reports_a_truncated_archive_in_one_line(tmp_path, monkeypatch, capsys):
    from agent_lab.cli import main

    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "cache root"))
    archive, _ = cifar_like_archive(tmp_path / "cifar10-jpeg.tar.gz", {"train": 1, "test": 1})
    truncated = tmp_path / "copy" / "cifar10-jpeg.tar.gz"
    truncated.parent.mkdir()
    truncated.write_bytes(archive.read_bytes()[:1000])
    code = main(["train", "--dataset", "cifar10", "--data_root", str(truncated), "--device", "cpu",
                 "--out", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"agent-lab: error: archive {truncated} is truncated")


def test_cifar10_archive_and_folder_must_have_the_cifar10_classes(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "cache"))
    archive, _ = cifar_like_archive(tmp_path / "wrong.tar.gz", {"train": 1, "test": 1}, classes=("a", "b"))
    with pytest.raises(ValueError, match="train classes"):
        load_dataset("cifar10", archive)
    write_png_folder(tmp_path / "folder")
    with pytest.raises(ValueError, match="airplane"):
        load_dataset("cifar10", tmp_path / "folder")


@needs_archive
def test_full_cifar10_archive_loads_and_contains_the_mini_subset(mini_bundle):
    """The first load decodes the archive (~10 s) and caches it under ~/.cache/agent_lab/data/decoded
    (or $AGENT_LAB_DATA); later runs read the cache in about a second."""
    full = load_dataset("cifar10", ARCHIVE)
    assert full.train.images.shape == (50000, 3, 32, 32) and full.test.images.shape == (10000, 3, 32, 32)
    assert full.train.labels.bincount().tolist() == [5000] * 10 and full.classes == list(CIFAR10_CLASSES)
    first_400 = torch.cat([full.train.images[c * 5000:c * 5000 + 400] for c in range(10)])
    first_100 = torch.cat([full.test.images[c * 1000:c * 1000 + 100] for c in range(10)])
    assert torch.equal(first_400, mini_bundle.train.images) and torch.equal(first_100, mini_bundle.test.images)


def test_fixed_size_data_sets_resize_on_request():
    bundle = load_dataset("synthetic", image_size=16)
    assert bundle.train.images.shape == (512, 3, 16, 16) and bundle.image_size == 16
    with pytest.raises(ValueError, match="image_size must be a positive integer or None, got 0"):
        load_dataset("synthetic", image_size=0)


# --- streaming (imagenet layout) -----------------------------------------------------------------

def test_imagenet_streams_with_replayable_per_sample_augmentation(tmp_path):
    for split, count in (("train", 5), ("val", 2)):
        for label, wnid in enumerate(("n01", "n02")):
            folder = tmp_path / split / wnid
            folder.mkdir(parents=True)
            for k in range(count):
                image = random_images(1, height=20, width=26, seed=label * 10 + k)[0]
                (folder / f"{k}.png").write_bytes(encode_png(image).numpy().tobytes())
    bundle = load_dataset("imagenet", tmp_path, image_size=16)
    assert bundle.classes == ["n01", "n02"] and bundle.mean == (0.485, 0.456, 0.406) and bundle.flip
    torch_state = torch.get_rng_state()
    train, test = make_loaders(bundle, 4, eval_batch_size=3, seed=7, device="cpu", num_workers=2)
    assert isinstance(train, StreamingLoader) and len(train) == 3 and len(test) == 2 and test.num_examples == 4
    for epoch in (0, 1):
        for step, (x, y) in enumerate(train.epoch(epoch)):  # decoded in worker processes
            assert x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32
            x_again, y_again = train.batch(epoch, step)  # decoded here
            assert torch.equal(x, x_again) and torch.equal(y, y_again)
    assert not torch.equal(train.batch(0, 0)[0], train.batch(1, 0)[0])
    xs, ys = zip(*test)
    assert torch.cat(ys).tolist() == [0, 0, 1, 1]
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert len(bundle.subset(n_train=4).train) == 4
    # Per-sample seeds: a view depends on (seed, epoch, index) only, not on the batch it lands in,
    # and two copies of one image get different views.
    whole_epoch = StreamingLoader(bundle.train, 10, seed=7, image_size=16).batch(1, 0)
    assert torch.equal(torch.cat([x for x, _ in train.epoch(1)]), whole_epoch[0])
    twins = bundle.train.take(torch.tensor([0, 0, 0, 0]))
    views = StreamingLoader(twins, 4, shuffle=False, seed=0, image_size=16).batch(0, 0)[0]
    assert all(not torch.equal(views[i], views[j]) for i in range(4) for j in range(i))


def test_missing_imagenet_says_where_it_belongs(tmp_path):
    with pytest.raises(DataUnavailableError, match="cannot download ImageNet"):
        load_dataset("imagenet", tmp_path)


def test_split_validates_its_fields():
    with pytest.raises(ValueError, match="Split.labels must be an int64"):
        Split(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32))
