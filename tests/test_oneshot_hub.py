"""One-shot pruning of tiny KerasHub models built from config.

Skipped, saying so, where keras-hub is not installed: it is the optional ``hub`` extra, left out
of ``test`` (it needs the full ``tensorflow``; ``make test`` installs it without that).
"""

import numpy as np
import pytest
from keras import ops

keras_hub = pytest.importorskip(
    "keras_hub", reason="keras-hub is not installed: pip install 'prunekit[hub]' (or see "
    "HUB_REQUIREMENTS in the Makefile) to run the KerasHub one-shot tests")

from prunekit.oneshot import find_blocks, prune_oneshot  # noqa: E402


def _batches(vocab, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [{"token_ids": rng.integers(0, vocab, (2, 8)).astype("int32"),
             "padding_mask": np.ones((2, 8), "int32")} for _ in range(n)]


def _gpt2():
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=16)
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def _kernels(layers):
    return [np.asarray(ops.convert_to_numpy(v)) for layer in layers for v in layer.weights
            if v.path.endswith("kernel")]


def test_gpt2_task_model_two_four_and_preset_round_trip(tmp_path):
    lm = _gpt2()
    blocks = find_blocks(lm)
    assert blocks == list(lm.backbone.transformer_layers)
    report = prune_oneshot(lm, _batches(40), "sparsegpt", n_m=(2, 4))
    assert len(report.layers) == 12  # q, k, v, attention output and two FFN layers per block
    names = [r.path.split("/")[-1] for r in report.layers[:6]]
    assert names == ["query", "key", "value", "attention_output",
                     "feedforward_intermediate_dense", "feedforward_output_dense"]
    for kernel in _kernels(blocks):
        rows = np.moveaxis(kernel.reshape(kernel.shape[0], -1), 0, -1)  # (O, K) for q/k/v/FFN
        if kernel.ndim == 3 and kernel.shape[-1] == 8 and kernel.shape[0] == 2:
            rows = kernel.reshape(-1, 8).T  # attention output: K = heads * head_dim
        assert ((rows != 0).reshape(rows.shape[0], -1, 4).sum(-1) == 2).all()
    before = lm(_batches(40)[0])
    lm.backbone.save_to_preset(str(tmp_path / "preset"))
    loaded = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))
    for a, b in zip(_kernels(lm.backbone.transformer_layers),
                    _kernels(loaded.transformer_layers)):
        np.testing.assert_array_equal(a, b)
    assert before.shape == (2, 8, 40)


def test_bert_backbone_wanda_reduces_to_half():
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=16)
    batches = [{"token_ids": b["token_ids"], "segment_ids": np.zeros((2, 8), "int32"),
                "padding_mask": b["padding_mask"]} for b in _batches(30)]
    report = prune_oneshot(backbone, batches, "wanda", 0.5)
    assert len(report.layers) == 12
    assert all(r.sparsity == 0.5 for r in report.layers)


def test_cli_on_a_local_preset_with_text(tmp_path, capsys):
    from prunekit.cli import main

    vocab = {"<|endoftext|>": 0, "a": 1, "b": 2, "c": 3, "Ġ": 4, "Ġa": 5, "ab": 6}
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=["Ġ a", "a b"])
    lm = _gpt2()
    lm.backbone.save_to_preset(str(tmp_path / "preset"))
    tokenizer.save_to_preset(str(tmp_path / "preset"))
    text = tmp_path / "cal.txt"
    text.write_text("ab a ab c ab ba " * 40)
    out = tmp_path / "pruned"
    assert main(["oneshot", str(tmp_path / "preset"), "--method", "wanda", "--sparsity", "0.5",
                 "--calibration", str(text), "--samples", "4", "--seq-len", "8",
                 "-o", str(out)]) == 0
    assert "block 2/2" in capsys.readouterr().out
    loaded = keras_hub.models.Backbone.from_preset(str(out))
    kernels = _kernels(loaded.transformer_layers)
    assert len(kernels) == 12 and all(np.mean(k == 0) == 0.5 for k in kernels)
    assert keras_hub.tokenizers.Tokenizer.from_preset(str(out)) is not None
