"""Keras InceptionV3 weights (Keras 3 `.weights.h5`, built here with random weights) load and match."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

from pathlib import Path

import keras
import numpy as np
import pytest
import torch

from inception_v3.errors import UserError
from inception_v3.weights import from_pretrained, load_pretrained


def test_keras_weights_load_and_match(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    reference = keras.applications.InceptionV3(weights=None, classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in reference.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.uniform(-0.1, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
    reference.save_weights(str(tmp_path / "inception_v3.weights.h5"))
    model, report = load_pretrained(tmp_path / "inception_v3.weights.h5")
    assert not report.new and not report.replaced and len(report.loaded) == len(model.state_dict())
    assert model.AuxLogits is None and not model.config.pool_include_pad  # Keras: no aux head, TF pooling
    x = torch.rand(2, 3, 299, 299) * 2 - 1  # Keras' preprocess_input: [-1, 1]
    theirs = torch.as_tensor(np.asarray(keras.ops.convert_to_numpy(reference(x.permute(0, 2, 3, 1).numpy()))))
    with torch.no_grad():
        assert (model.eval()(x) - theirs).abs().max() < 1e-4


def test_keras2_h5_layout(tmp_path: Path) -> None:
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(1)
    reference = keras.applications.InceptionV3(weights=None, classifier_activation=None, classes=7)
    with h5py.File(tmp_path / "inception_v3_weights_tf_dim_ordering_tf_kernels.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    model, report = load_pretrained(tmp_path / "inception_v3_weights_tf_dim_ordering_tf_kernels.h5")
    assert model.config.num_classes == 7 and not report.new
    from inception_v3.cli import main

    assert (
        main(["convert", str(tmp_path / "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"), str(tmp_path / "o")])
        == 0
    )
    assert from_pretrained(tmp_path / "o").config == model.config
    x = torch.rand(1, 3, 299, 299) * 2 - 1
    theirs = torch.as_tensor(np.asarray(keras.ops.convert_to_numpy(reference(x.permute(0, 2, 3, 1).numpy()))))
    with torch.no_grad():
        assert (model.eval()(x) - theirs).abs().max() < 1e-4


def test_not_a_keras_file(tmp_path: Path) -> None:
    (tmp_path / "w.h5").write_bytes(b"nope")
    with pytest.raises(UserError, match="cannot read"):
        load_pretrained(tmp_path / "w.h5")
