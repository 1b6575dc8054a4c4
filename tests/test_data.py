"""Data: Debian's Fashion-MNIST files, the Inception preprocessing, seeded augmentation."""

import gzip
from pathlib import Path

import pytest
import torch

from inception_v3.data.datasets import build_datasets, split_sources
from inception_v3.data.fashion_mnist import FASHION_MNIST_DIR, load_fashion_mnist
from inception_v3.data.transforms import CentralCrop, Preprocessing, eval_transform, train_transform
from inception_v3.errors import UserError
from inception_v3.training.sampling import SeededSamples


def test_fashion_mnist_from_the_debian_files() -> None:
    images, labels = load_fashion_mnist(FASHION_MNIST_DIR, "test")
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10_000,) and set(labels.tolist()) == set(range(10))
    train_images, _ = load_fashion_mnist(FASHION_MNIST_DIR, "train")
    assert train_images.shape == (60_000, 28, 28)


@pytest.mark.parametrize(("channels", "mean"), [(1, (0.5,)), (3, (0.5, 0.5, 0.5))])
def test_gray_images_as_one_channel_or_replicated(channels: int, mean: tuple[float, ...]) -> None:
    p = Preprocessing(size=79, mean=mean, std=mean)
    splits = build_datasets(*split_sources("fashion-mnist", None), p, channels, train_subset=4, val_subset=4)
    x, _ = splits.train[0]
    assert x.shape == (channels, 79, 79) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0  # scaled to [-1, 1]
    v, _ = splits.val[0]
    assert v.shape == (channels, 79, 79)
    if channels == 3:
        assert torch.equal(v[0], v[1]) and torch.equal(v[1], v[2])
    assert len(splits.classes) == 10 and splits.classes[0] == "T-shirt/top"


def test_central_crop_keeps_the_middle_fraction() -> None:
    img = torch.arange(64 * 64, dtype=torch.float32).view(1, 64, 64)
    out = CentralCrop(0.875)(img)
    assert out.shape == (1, 56, 56) and out[0, 0, 0] == img[0, 4, 4]
    p = Preprocessing(size=299)
    assert eval_transform(p, 3)(torch.zeros(3, 400, 300, dtype=torch.uint8)).shape == (3, 299, 299)
    assert train_transform(p, 3)(torch.zeros(3, 400, 300, dtype=torch.uint8)).shape == (3, 299, 299)


def test_augmentation_depends_only_on_seed_and_key() -> None:
    p = Preprocessing(size=79, mean=(0.5,), std=(0.5,))
    train = build_datasets(*split_sources("fashion-mnist", None), p, 1, train_subset=8, val_subset=4).train
    a, b = SeededSamples(train, seed=1), SeededSamples(train, seed=1)
    torch.manual_seed(123)
    first = a[8 + 3][0]  # epoch 1, image 3
    torch.manual_seed(456)  # the global generator does not matter...
    assert torch.equal(first, b[8 + 3][0])
    assert not torch.equal(first, a[3][0])  # ...but the epoch does
    state = torch.get_rng_state()
    a[5]
    assert torch.equal(state, torch.get_rng_state())  # and sampling leaves it untouched


def test_missing_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "none", "train")
    with pytest.raises(UserError, match="is missing"):
        load_fashion_mnist(tmp_path, "train")
    src = Path(FASHION_MNIST_DIR)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(gzip.compress(gzip.decompress((src / name).read_bytes())[:5000]))
    with pytest.raises(UserError, match="truncated"):
        load_fashion_mnist(tmp_path, "test")
