"""The exact proof (im2col_conv.equivalence): it holds on the sweep, and it can fail.

The wrong variants below are deliberately broken versions of the direct
method; the proof must reject each of them with the first differing entry.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from im2col_conv import ConvGrads, direct
from im2col_conv.equivalence import (
    col2im_matrix,
    compare_float64,
    im2col_matrix,
    main,
    prove_geometry,
    selection_matrix,
    sweep_grid,
)
from im2col_conv.geometry import ConvGeometry


def test_document_example_is_proved():
    proof = prove_geometry((5, 5), (3, 3), stride=2, in_channels=1, out_channels=1)
    assert proof.held
    assert [i.name for i in proof.identities] == [
        "im2col == P",
        "col2im == P^T",
        "forward, formula (4)",
        "input gradient, formula (8)",
        "weight gradient, formula (5)",
        "bias gradient, formula (6)",
    ]
    assert all(i.coefficients > 0 and i.mismatch == "" for i in proof.identities)
    assert "every identity holds" in str(proof)


@pytest.mark.parametrize(
    "geometry",
    [
        dict(input_size=6, kernel_size=3, stride=2, padding=[(0, 2)], dilation=1, groups=2),
        dict(input_size=(4, 3), kernel_size=(2, 2), stride=(3, 2), padding="same", dilation=(1, 2)),
        dict(input_size=(3, 2, 3), kernel_size=(2, 1, 2), stride=(1, 2, 3), padding=1, dilation=1),
    ],
)
def test_more_geometries_are_proved(geometry):
    proof = prove_geometry(**geometry)
    assert proof.held, str(proof)


def test_selection_matrix_matches_loops():
    geometry = ConvGeometry.create((4, 5), (2, 3), (2, 1), ((1, 0), (0, 2)), (1, 2))
    k1, k2 = geometry.kernel_size
    o1, o2 = geometry.output_size
    expected = np.zeros((k1 * k2 * o1 * o2, 20), dtype=np.int64)
    for a, b, i, j in itertools.product(range(k1), range(k2), range(o1), range(o2)):
        r, c = i * 2 + a * 1 - 1, j * 1 + b * 2 - 0
        if 0 <= r < 4 and 0 <= c < 5:
            expected[((a * k2 + b) * o1 + i) * o2 + j, r * 5 + c] = 1
    np.testing.assert_array_equal(selection_matrix(geometry).toarray(), expected)
    assert (im2col_matrix(geometry) != selection_matrix(geometry)).nnz == 0
    assert (col2im_matrix(geometry, 2) != selection_matrix(geometry, 2).T).nnz == 0


# ---------------------------------------------------------------------------
# Wrong variants of formula (8): the proof must reject them
# ---------------------------------------------------------------------------


def _variant_backward(*, rotate=True, extra_rows="after"):
    """The direct input gradient with one step broken (1 group, no padding, no dilation)."""

    def backward(grad_output, x, weight, stride=1, padding=0, dilation=1, groups=1):
        right = direct.conv_backward(grad_output, x, weight, stride, padding, dilation, groups)
        geometry = ConvGeometry.create(x.shape[2:], weight.shape[2:], stride, padding, dilation)
        full = tuple(k - 1 for k in geometry.kernel_size)
        r = geometry.leftover
        if extra_rows == "after":
            pads = [(f, f + e) for f, e in zip(full, r)]
        elif extra_rows == "before":
            pads = [(f + e, f) for f, e in zip(full, r)]
        else:  # forgotten, as when the stride is assumed to divide the input
            pads = [(f, f) for f in full]
        p_delta = direct.pad(direct.dilate(grad_output, geometry.stride), pads)
        kernel = direct.rot180(weight) if rotate else weight
        grad_input = direct.correlate(p_delta, kernel.swapaxes(0, 1))
        return ConvGrads(grad_input, right.weight, right.bias)

    return backward


def test_forgetting_the_rotation_is_rejected():
    proof = prove_geometry(5, 3, stride=2, candidate_backward=_variant_backward(rotate=False))
    failed = {i.name: i for i in proof.identities if not i.held}
    assert set(failed) == {"input gradient, formula (8)"}
    message = failed["input gradient, formula (8)"].mismatch
    assert message.startswith("first difference: coefficient of weight[")
    assert "grad_output[" in message and "in grad_input[" in message
    assert not proof.held and "NOT proved" in str(proof)


def test_forgetting_the_extra_rows_of_a_non_dividing_stride_is_rejected():
    # 6 inputs, kernel 3, stride 2: r = 1 row past the last window.
    assert prove_geometry(5, 3, stride=2, candidate_backward=_variant_backward(extra_rows="none")).held
    proof = prove_geometry(6, 3, stride=2, candidate_backward=_variant_backward(extra_rows="none"))
    failed = [i for i in proof.identities if not i.held]
    assert [i.name for i in failed] == ["input gradient, formula (8)"]
    assert "shape" in failed[0].mismatch


def test_extra_rows_on_the_wrong_side_are_rejected_with_the_first_difference():
    proof = prove_geometry(6, 3, stride=2, candidate_backward=_variant_backward(extra_rows="before"))
    failed = [i for i in proof.identities if not i.held]
    assert [i.name for i in failed] == ["input gradient, formula (8)"]
    assert failed[0].mismatch.startswith("first difference:")
    assert "im2col 1, direct 0" in failed[0].mismatch or "im2col 0, direct 1" in failed[0].mismatch


def test_a_weight_gradient_of_the_unpadded_input_is_rejected():
    # The trap of correlating the unpadded input: the weight gradient comes out with the wrong taps.
    def backward(grad_output, x, weight, stride=1, padding=0, dilation=1, groups=1):
        right = direct.conv_backward(grad_output, x, weight, stride, padding, dilation, groups)
        delta_s = direct.dilate(grad_output, stride, ndim=1)
        grad_weight = direct.correlate(x.swapaxes(0, 1), delta_s.swapaxes(0, 1)).swapaxes(0, 1)
        return ConvGrads(right.input, grad_weight[..., : weight.shape[-1]], right.bias)

    proof = prove_geometry(5, 3, stride=1, padding=1, candidate_backward=backward)
    assert [i.name for i in proof.identities if not i.held] == ["weight gradient, formula (5)"]


def test_a_hidden_division_by_the_batch_size_is_rejected():
    def backward(grad_output, x, weight, stride=1, padding=0, dilation=1, groups=1):
        right = direct.conv_backward(grad_output, x, weight, stride, padding, dilation, groups)
        return ConvGrads(right.input, right.weight // len(x), right.bias // len(x))

    proof = prove_geometry(4, 2, candidate_backward=backward)
    failed = {i.name for i in proof.identities if not i.held}
    assert failed == {"weight gradient, formula (5)", "bias gradient, formula (6)"}


def test_a_candidate_that_raises_is_reported_not_propagated():
    def backward(*args, **kwargs):
        raise RuntimeError("boom")

    proof = prove_geometry(4, 2, candidate_backward=backward)
    assert not proof.held
    assert "direct raised RuntimeError: boom" in proof.identities[3].mismatch


# ---------------------------------------------------------------------------
# The command line and the float64 comparison
# ---------------------------------------------------------------------------


def test_quick_sweep_proves_every_geometry(capsys):
    grid = sweep_grid(quick=True)
    assert {len(case.input_size) for case in grid} == {1, 2, 3}
    assert {case.groups for case in grid} == {1, 2}
    assert main(["--quick", "--no-float", "--jobs", "1", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    proved = [line for line in lines if line[:4].strip().isdigit()]
    assert len(proved) == len(grid)
    assert all(" proved " in line for line in proved)
    assert any(line.startswith(f"proved {len(grid)} of {len(grid)} geometries exactly") for line in lines)
    assert lines[-1] == "everything proved"


def test_usage_errors_exit_with_status_2(capsys):
    assert main(["--no-such-option"]) == 2
    assert main(["--help"]) == 0
    assert "exit status: 0 everything proved, 1" in capsys.readouterr().out


def test_full_grid_covers_what_the_sweep_promises():
    grid = sweep_grid()
    assert len(grid) <= 300
    assert {len(c.input_size) for c in grid} == {1, 2, 3}
    assert {s for c in grid for s in c.stride} == {1, 2, 3}
    assert {p for c in grid for p in c.padding} >= {(0, 0), (1, 1), (0, 2), (2, 1)}
    assert {d for c in grid for d in c.dilation} == {1, 2}
    assert {c.groups for c in grid} == {1, 2}
    kernel_vs_stride = {(k > s) - (k < s) for c in grid for k, s in zip(c.kernel_size, c.stride)}
    assert kernel_vs_stride == {-1, 0, 1}
    non_dividing = [
        c
        for c in grid
        if any(
            r
            for r in ConvGeometry.create(
                c.input_size, c.kernel_size, c.stride, c.padding, c.dilation
            ).leftover
        )
    ]
    assert non_dividing


def test_float64_at_realistic_sizes_agrees_to_rounding():
    result = compare_float64(batch=8, in_channels=16, out_channels=32, size=(32, 32), stride=2, padding=1)
    assert result.worst < 1e-13
    assert str(result).startswith("float64 N=8, C 16->32")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(groups=0), ValueError, r"groups must be >= 1, got 0"),
        (dict(groups=2, in_channels=3), ValueError, r"groups=2 must divide both the input channels \(3\)"),
        (dict(in_channels=0), ValueError, r"in_channels must be >= 1, got 0"),
        (dict(input_size=0), ValueError, r"larger than the padded input \(0,\)"),
    ],
)
def test_prove_geometry_refuses_bad_arguments_by_name(kwargs, error, match):
    args = dict(input_size=5, kernel_size=3) | kwargs
    with pytest.raises(error, match=match):
        prove_geometry(**args)
