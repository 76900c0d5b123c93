"""The engine proof: tagged probes, the explicit maps, every path, the premises, and what it rejects."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_conv as ic
from im2col_conv import conv_backward
from im2col_conv.equivalence import (
    DEFAULT_PATHS,
    EnginePath,
    Layout,
    ReferenceMaps,
    Tags,
    check_normalisation,
    default_cases,
    engine_proof,
    exhaustive_cases,
    normalisation,
    prove_engine,
)
from im2col_conv.equivalence.engine_sweep import FUSED_CHANNELS
from im2col_conv.equivalence.probing import ProbeCase, parameter_gradient_tensors
from im2col_conv.equivalence.tagging import decode, read_summed
from im2col_conv.geometry import ConvGeometry

LAYOUT = Layout((5, 3), (2, 2), (2, 1), ((1, 0), (0, 1)), (1, 2), 4, 2, 2)


def test_every_default_path_is_proved():
    proof = prove_engine(LAYOUT)
    assert proof.held, str(proof)
    assert len(proof.identities) == 8 * len(DEFAULT_PATHS)
    names = {identity.name.split(" [")[0] for identity in proof.identities}
    assert names == {
        "forward (4)",
        "bias term of (4)",
        "input gradient (8)",
        "weight gradient (5)",
        "bias gradient (6)",
        "kept columns",
        "conv_transpose",
        "premises",
    }


def test_tagged_reading_equals_the_one_hot_reading():
    geometry = ConvGeometry(
        LAYOUT.input_size, LAYOUT.kernel_size, LAYOUT.stride, LAYOUT.padding, LAYOUT.dilation
    )
    case = ProbeCase(geometry, LAYOUT.padding, 4, 2, 2)
    one_hot_weight, one_hot_bias = parameter_gradient_tensors(conv_backward, case, "engine")
    calls = engine_proof._Calls(LAYOUT, LAYOUT.padding, EnginePath("float64", None))
    sizes = [int(np.prod(shape)) for shape in (LAYOUT.w_shape, LAYOUT.y_shape, LAYOUT.x_shape)]
    tagged = read_summed(
        lambda u, v: calls.parameters(False, u, v),
        sizes[0],
        2,
        sizes[1],
        sizes[2],
        Tags(np.dtype("float64")),
        4,
        "t",
    )
    np.testing.assert_array_equal(tagged[0], one_hot_weight)
    np.testing.assert_array_equal(tagged[1], one_hot_bias)
    np.testing.assert_array_equal(tagged[0], ReferenceMaps(LAYOUT).weight_gradient())


def test_decoding_reports_carries_and_conjugation():
    tags = Tags(np.dtype("complex128"))
    assert decode(np.array([-(1 + 4 * 3)], dtype=complex), 2, tags, "t").tolist() == [[1, 3]]
    with pytest.raises(Exception, match="negative or at least 4"):
        decode(np.array([1 + 4 * 3], dtype=complex), 2, tags, "t")  # +V: one operand conjugated
    with pytest.raises(Exception, match="not an exact integer"):
        decode(np.array([0.5]), 1, Tags(np.dtype("float64")), "t")


def test_an_unconjugated_complex_weight_gradient_is_rejected(monkeypatch):
    # The convention conjugates the input in the weight gradient; undoing that is a bug.
    def unconjugated(grad_output, x, weight, **keywords):
        return conv_backward(grad_output, np.conj(x), weight, **keywords)

    monkeypatch.setattr(engine_proof, "conv_backward", unconjugated)
    proof = prove_engine(LAYOUT, paths=(EnginePath("float64", None), EnginePath("complex128", None)))
    failed = [identity.name for identity in proof.identities if not identity.held]
    assert failed and all("complex128" in name for name in failed)
    assert "weight gradient (5) [complex128, default workspace, N<=8]" in failed


def test_a_bias_added_to_the_first_sample_only_is_rejected(monkeypatch):
    def first_only(x, weight, bias=None, **keywords):
        y = ic.conv(x, weight, **keywords)
        if bias is not None:
            y[:1] += np.asarray(bias).reshape(-1, *([1] * (y.ndim - 2)))
        return y

    monkeypatch.setattr(engine_proof, "conv", first_only)
    proof = prove_engine(LAYOUT, paths=(EnginePath("int64", None),))
    failed = {identity.name.split(" [")[0]: identity for identity in proof.identities if not identity.held}
    assert set(failed) == {"bias term of (4)", "premises"}
    assert failed["bias term of (4)"].mismatch.startswith("first difference: coefficient of bias[0] in y[")


def test_normalisation_holds_and_catches_swapped_pairs(monkeypatch):
    assert all(identity.held for identity in check_normalisation())

    def swapped(x, weight, bias=None, padding=0, **keywords):
        if isinstance(padding, tuple) and padding and isinstance(padding[0], tuple):
            padding = tuple((a, b) for b, a in padding)
        return ic.conv(x, weight, bias, padding=padding, **keywords)

    monkeypatch.setattr(normalisation, "conv", swapped)
    held = {identity.name: identity.held for identity in check_normalisation()}
    assert held == {"output size": True, "padding pairs": False, 'padding "same"': True}


def test_the_sweeps_cover_what_the_docs_promise():
    cases = default_cases()
    assert len(cases) >= 1000
    assert {len(c.layout.input_size) for c in cases} == {1, 2, 3}
    assert {p for c in cases for p in c.paths} >= set(DEFAULT_PATHS)
    assert any(c.layout.in_channels // c.layout.groups >= FUSED_CHANNELS for c in cases)
    assert any(c.padding == "same" for c in cases)
    assert any(c.layout.groups > 1 and c.layout.in_channels > c.layout.groups for c in cases)
    assert len(exhaustive_cases(1)) > 30000 and len(exhaustive_cases(2)) > 5000
