"""Subclassed models (pruned in place) and layers nested in layers: train, save, load, strip."""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np
import pytest
from conftest import tfmot_keep_count, to_numpy

import prunekit
from prunekit import ConstantSparsity, PruneLowMagnitude, UpdatePruningStep, prune_low_magnitude

L = keras.layers
SCHEDULE = ConstantSparsity(0.5, 0, frequency=1)


@keras.saving.register_keras_serializable("prunekit_tests")
class Block(L.Layer):
    """A custom layer holding two Dense layers (a transformer-style feed-forward block)."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.up = L.Dense(2 * units, name="up")
        self.down = L.Dense(units, name="down")

    def call(self, x, training=None):
        return x + self.down(keras.ops.relu(self.up(x, training=training)), training=training)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable("prunekit_tests")
class Backbone(keras.Model):
    """A model subclass constructed functionally (like a KerasHub backbone)."""

    def __init__(self, units=4, **kwargs):
        inputs = keras.Input((units,))
        outputs = L.Dense(units, name="proj")(inputs)
        super().__init__(inputs, outputs, **kwargs)
        self.units = units

    def get_config(self):
        return {"units": self.units, "name": self.name}


@keras.saving.register_keras_serializable("prunekit_tests")
class Task(keras.Model):
    """A subclassed model holding Functional blocks, custom layers and a list of blocks."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        inputs = keras.Input((units,))
        self.stem = keras.Model(inputs, L.Dense(units, name="stem_dense")(inputs), name="stem")
        self.backbone = Backbone(units, name="backbone")
        self.blocks = [Block(units, name="block_a"), Block(units, name="block_b")]
        self.norm = L.LayerNormalization(name="norm")
        self.head = L.Dense(2, name="head")

    def call(self, x, training=None):
        x = self.backbone(self.stem(x, training=training), training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return self.head(self.norm(x), training=training)

    def get_config(self):
        return {"units": self.units, "name": self.name}


def data(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")


def built_task():
    model = Task(name="task")
    model(data()[0])
    return model


def kernels(model):
    return [w for wrapper in prunekit.iter_wrappers(model) for w in wrapper.prunable_weights]


def fit(model, epochs=1):
    x, y = data()
    model.compile(keras.optimizers.SGD(0.05), "mse")
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=[UpdatePruningStep()])


def test_pruned_in_place_keeps_class_and_shares_variables():
    model = built_task()
    head_kernel = model.head.kernel
    x = data()[0]
    before = to_numpy(model(x))
    pruned = prune_low_magnitude(model, SCHEDULE)
    assert pruned is model and isinstance(pruned, Task) and type(pruned).__name__ == "Task"
    assert isinstance(model.head, PruneLowMagnitude) and model.head.layer.kernel is head_kernel
    assert isinstance(model.blocks[0].up, PruneLowMagnitude)  # custom layer: recursed into
    assert isinstance(model.stem.layers[1], PruneLowMagnitude)  # plain Functional: cloned
    assert isinstance(model.backbone, PruneLowMagnitude)  # Functional subclass: wrapped whole
    assert isinstance(model.norm, L.LayerNormalization)  # nothing to prune: left alone
    assert [layer.name for layer in model.layers].count("prune_low_magnitude_head") == 1
    assert len(list(prunekit.iter_wrappers(model))) == 7  # stem_dense, backbone, 4 block, head
    np.testing.assert_allclose(to_numpy(model(x)), before, rtol=1e-6)


def test_train_save_load_continue_strip(tmp_path):
    model = prune_low_magnitude(built_task(), SCHEDULE)
    fit(model, epochs=2)
    for weight in kernels(model):
        values = to_numpy(weight)
        assert int((values != 0).sum()) == tfmot_keep_count(values.size, 0.5), weight.path
    path = os.path.join(tmp_path, "task.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Task) and isinstance(loaded.blocks[1].down, PruneLowMagnitude)
    x = data()[0]
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-6)
    steps = [int(to_numpy(w.pruning_step)) for w in prunekit.iter_wrappers(loaded)]
    assert steps == [4] * 7
    for a, b in zip(prunekit.iter_wrappers(loaded), prunekit.iter_wrappers(model)):
        for m1, m2 in zip(a.masks, b.masks):
            np.testing.assert_array_equal(to_numpy(m1), to_numpy(m2))
    fit(loaded)  # training continues from step 4
    assert [int(to_numpy(w.pruning_step)) for w in prunekit.iter_wrappers(loaded)] == [6] * 7
    stripped = prunekit.strip_pruning(loaded)
    assert stripped is loaded and type(stripped) is Task
    assert not list(prunekit.iter_wrappers(stripped))
    assert isinstance(stripped.backbone, Backbone) and isinstance(stripped.head, L.Dense)
    assert int((to_numpy(stripped.head.kernel) != 0).sum()) == tfmot_keep_count(8, 0.5)
    again = os.path.join(tmp_path, "stripped.keras")
    stripped.save(again)
    plain = keras.saving.load_model(again)
    assert type(plain) is Task and not list(prunekit.iter_wrappers(plain))
    np.testing.assert_allclose(to_numpy(plain(x)), to_numpy(stripped(x)), rtol=1e-5, atol=1e-6)


def test_functional_subclass_pruned_directly(tmp_path):
    backbone = Backbone(name="backbone")
    pruned = prune_low_magnitude(backbone, SCHEDULE)  # a graph: cloned, as Functional
    assert [type(layer).__name__ for layer in pruned.layers[1:]] == ["PruneLowMagnitude"]
    fit_x, fit_y = data()
    pruned.compile("sgd", "mse")
    pruned.fit(fit_x, fit_y[:, :1].repeat(4, axis=1), verbose=0,
               callbacks=[UpdatePruningStep()])
    path = os.path.join(tmp_path, "backbone.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    stripped = prunekit.strip_pruning(loaded)
    assert int((to_numpy(stripped.layers[1].kernel) != 0).sum()) == tfmot_keep_count(16, 0.5)


def test_callbacks_find_wrappers_nested_in_custom_layers():
    model = prune_low_magnitude(built_task(), SCHEDULE)
    fit(model)
    inner = [w for block in model.blocks for w in (block.up, block.down)]
    assert all(isinstance(w, PruneLowMagnitude) for w in inner)
    found = list(prunekit.iter_wrappers(model))
    assert all(any(w is f for f in found) for w in inner) and len(found) == 7
    assert [int(to_numpy(w.pruning_step)) for w in found] == [2] * 7


def test_shared_layer_is_wrapped_once():
    class Shared(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(4)
            self.both = [self.dense, L.Dense(4)]

        def call(self, x, training=None):
            return self.both[1](self.dense(self.both[0](x)))

    model = Shared()
    model(np.ones((1, 4)))
    prune_low_magnitude(model)
    assert model.dense is model.both[0] and isinstance(model.dense, PruneLowMagnitude)
    assert len(list(prunekit.iter_wrappers(model))) == 2


def test_unsupported_layer_named_by_attribute_path_and_nothing_changes():
    class Odd(L.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=shape[-1:])

        def call(self, x):
            return x * self.w

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.first = L.Dense(4)
            self.parts = {"odd": Odd(), "last": L.Dense(2)}

        def call(self, x, training=None):
            return self.parts["last"](self.parts["odd"](self.first(x)))

    model = Net()
    model(np.ones((1, 4)))
    with pytest.raises(ValueError) as error:
        prune_low_magnitude(model)
    message = str(error.value)
    assert """Layer 'parts["odd"]' of class Odd is not supported""" in message
    assert "register_prunable(Odd" in message and "Nothing was changed" in message
    assert isinstance(model.first, L.Dense) and type(model) is Net
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prune_low_magnitude(model, skip_unsupported=True)
    assert sum("unsupported" in str(w.message) for w in caught) == 1
    report = prunekit.pruning_report(model)
    assert [s.path for s in report.skipped] == ['parts["odd"]']
    assert report.pruned == ("dense", "dense_1")  # `first` and `parts["last"]`, by layer name
    assert isinstance(model.parts["last"], PruneLowMagnitude)
    assert isinstance(model.parts["odd"], Odd)


def test_unbuilt_model_is_refused():
    with pytest.raises(ValueError, match="before it is built.*model.build"):
        prune_low_magnitude(Task())


def test_model_without_training_argument_warns():
    class NoTraining(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = NoTraining()
    model(np.ones((1, 4)))
    with pytest.warns(UserWarning, match="no `training` argument"):
        prune_low_magnitude(model)
    model.compile("sgd", "mse")
    with pytest.warns(UserWarning, match="never called with training=True"):
        model.fit(np.ones((4, 4)), np.ones((4, 2)), verbose=0, callbacks=[UpdatePruningStep()])
