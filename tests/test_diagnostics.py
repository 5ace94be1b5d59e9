"""Diagnostics: the probe against the lecture's own computation, and probes never change a run."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from bnnames.config import ModelConfig, preset
from bnnames.diagnostics.probe import DEAD, SATURATION, probe
from bnnames.diagnostics.recording import Recording, load_recording, save_recording, sidecar_path
from bnnames.model import Tanh, create_model


def _deep_model():
    config = preset("deep")[0]
    model = create_model(config, 27, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    return model, torch.randint(0, 27, (32, 3), generator=g), torch.randint(0, 27, (32,), generator=g)


def test_probe_equals_the_lectures_retain_grad_computation():
    model, x, y = _deep_model()
    reference = copy.deepcopy(model)
    result = probe(model, x, y, step=7, lr=0.1)

    # the lecture: keep each layer's output, retain its grad, backward, then read the statistics
    outs, h = [], x
    for layer in reference.layers:
        h = layer(h)
        if isinstance(layer, Tanh):
            h.retain_grad()
            outs.append(h)
    loss = F.cross_entropy(h, y)
    loss.backward()
    assert result.step == 7 and math.isclose(result.loss, loss.item(), rel_tol=1e-6)
    assert len(result.layers) == len(outs) == 5
    for stats, t in zip(result.layers, outs):
        assert math.isclose(stats.mean, t.mean().item(), abs_tol=1e-6)
        assert math.isclose(stats.std, t.std().item(), rel_tol=1e-5)
        assert math.isclose(stats.saturation, (t.abs() > SATURATION).float().mean().item(), rel_tol=1e-6)
        assert math.isclose(stats.grad_std, t.grad.std().item(), rel_tol=1e-5)
        assert sum(stats.hist.counts) == t.numel()
    weights = [(n, p) for n, p in reference.named_parameters() if p.ndim == 2]
    assert [w.name for w in result.weights] == [n for n, _ in weights]
    for stats, (_, p) in zip(result.weights, weights):
        assert math.isclose(stats.grad_to_data, (p.grad.std() / p.std()).item(), rel_tol=1e-5)
        expected = ((0.1 * p.grad).std() / p.data.std()).log10().item()  # the lecture's `ud`
        assert math.isclose(stats.update_to_data, expected, abs_tol=1e-5)


def test_dead_units_are_the_lectures_all_white_columns():
    """makemore part 3's `plt.imshow(h.abs() > 0.99)`: a unit saturated on every example is dead."""
    config = ModelConfig(norm="none", gain=3.0, n_hidden=60, n_layers=2)  # too large a gain: saturated
    model = create_model(config, 27, torch.Generator().manual_seed(0))
    with torch.no_grad():
        next(m for m in model.layers if hasattr(m, "bias")).bias[:7] = 50.0  # 7 units of layer 1 stuck at +1
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, 27, (32, 3), generator=g), torch.randint(0, 27, (32,), generator=g)
    result = probe(model, x, y, step=0, lr=0.1)
    outs, h = [], x
    for layer in model.layers:
        h = layer(h)
        if isinstance(layer, Tanh):
            outs.append(h.detach())
    expected = [int((t.abs() > DEAD).all(dim=0).sum()) for t in outs]  # (B, 60) -> columns all white
    assert [s.dead for s in result.layers] == expected and sum(expected) > 0
    assert [s.units for s in result.layers] == [60, 60]


def test_probe_leaves_parameters_gradients_buffers_and_mode_untouched():
    model, x, y = _deep_model()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe(model, x, y, step=0, lr=0.1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not model.training


def test_recording_round_trips_through_its_json_sidecar(tmp_path):
    model, x, y = _deep_model()
    recording = Recording(every=5, run={"model_config": {"n_hidden": 100}})
    for step in (0, 5, 10):
        recording.add(probe(model, x, y, step=step, lr=0.1))
    path = sidecar_path(tmp_path / "run.safetensors")
    assert path.name == "run.diagnostics.json"
    save_recording(path, recording)
    loaded = load_recording(path)
    assert loaded == recording
    cut = loaded.up_to(5)
    assert cut.steps == [0, 5] and cut.first is not None and cut.last is None
    assert len(loaded.series("weight", "layers.2.weight", "update_to_data")) == 3


def test_a_damaged_sidecar_is_one_clean_error(tmp_path):
    import json

    import pytest

    from bnnames.errors import DiagnosticsError

    model, x, y = _deep_model()
    recording = Recording(every=5, run={})
    recording.add(probe(model, x, y, step=0, lr=0.1))
    path = tmp_path / "run.diagnostics.json"
    save_recording(path, recording)
    good = json.loads(path.read_text())
    damaged = [
        {**good, "every": "often"},
        {**good, "steps": [0, 5]},  # series of different lengths
        {**good, "first": {**good["first"], "layers": [{"name": "x"}]}},
        {**good, "layer_rows": [[[1.0, 2.0]]]},
        {**good, "format": "something else"},
    ]
    for data in damaged:
        path.write_text(json.dumps(data))
        with pytest.raises(DiagnosticsError):
            load_recording(path)
