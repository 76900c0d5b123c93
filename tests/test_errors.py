"""Every invalid call raises the right exception with a message naming the argument and values.

Each check also verifies that the array arguments were not modified by the failed call.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from im2col_conv import (
    ConvGeometry,
    col2im,
    conv,
    conv_backward,
    conv_forward,
    conv_transpose,
    im2col,
    output_size,
)

rng = np.random.default_rng(40)
X1 = rng.standard_normal((2, 4, 6))  # 1-D input, 4 channels
W1 = rng.standard_normal((6, 4, 3))  # 1-D weight, groups=1
X2 = rng.standard_normal((2, 3, 5, 5))
W2 = rng.standard_normal((4, 3, 3, 3))


def raises(exc, match, fn, *args, **kwargs):
    """Assert ``fn(*args, **kwargs)`` raises ``exc`` matching ``match`` and leaves array args untouched."""
    arrays = [a for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)]
    copies = [a.copy() for a in arrays]
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)


# --- geometry -------------------------------------------------------------------------------------


def test_kernel_larger_than_input():
    raises(ValueError, r"kernel_size \(3,\).*larger than the padded input \(2,\)", conv, X1[..., :2], W1)


def test_dilated_kernel_larger_than_padded_input():
    raises(
        ValueError,
        r"kernel_size \(3,\) with dilation \(3,\) spans \(7,\), larger than the padded input \(6,\)",
        conv,
        X1,
        W1,
        dilation=3,
    )
    raises(ValueError, r"spans \(7,\).*padded input \(6,\)", im2col, X1, 3, dilation=3)
    raises(ValueError, r"spans \(5, 5\).*padded input \(5, 4\)", conv, X2[..., :4], W2, dilation=(2, 2))


def test_kernel_fits_only_with_padding_is_accepted():
    assert conv(X1[..., :2], W1, padding=1).shape == (2, 6, 2)


@pytest.mark.parametrize("stride", [0, -1, (1, 0)])
def test_stride_below_one(stride):
    w = W2 if isinstance(stride, tuple) else W1
    x = X2 if isinstance(stride, tuple) else X1
    raises(
        ValueError, rf"stride entries must be >= 1, got {re.escape(repr(stride))}", conv, x, w, stride=stride
    )


def test_stride_below_one_in_every_entry_point():
    match = r"stride entries must be >= 1, got 0"
    raises(ValueError, match, conv_forward, X1, W1, stride=0)
    raises(ValueError, match, conv_backward, np.zeros((2, 6, 4)), X1, W1, stride=0)
    raises(ValueError, match, conv_transpose, X1, W1.transpose(1, 0, 2).copy(), stride=0)
    raises(ValueError, match, im2col, X1, 3, stride=0)
    raises(ValueError, match, col2im, np.zeros((2, 12, 4)), 6, 3, stride=0)
    raises(ValueError, match, output_size, 6, 3, stride=0)


@pytest.mark.parametrize("dilation", [0, -2])
def test_dilation_below_one(dilation):
    raises(ValueError, rf"dilation entries must be >= 1, got {dilation}", conv, X1, W1, dilation=dilation)
    raises(ValueError, rf"dilation entries must be >= 1, got {dilation}", im2col, X1, 3, dilation=dilation)
    raises(ValueError, r"dilation entries must be >= 1", conv_transpose, X1, W1[:4], dilation=dilation)


@pytest.mark.parametrize(
    ("padding", "match"),
    [
        (-1, r"padding must be non-negative, got -1"),
        ((1, -1), r"padding must be non-negative, got \(1, -1\)"),
        ([(0, 0), (-1, 2)], r"padding must be non-negative, got \[\(0, 0\), \(-1, 2\)\]"),
    ],
)
def test_negative_padding(padding, match):
    raises(ValueError, match, conv, X2, W2, padding=padding)
    raises(ValueError, match, im2col, X2, (3, 3), padding=padding)
    raises(ValueError, match, conv_transpose, X2, W2[:3], padding=padding)


@pytest.mark.parametrize("name", ["stride", "dilation", "padding"])
def test_wrong_tuple_length(name):
    match = rf"{name} must have one entry per spatial dimension \(2\), got 3 entries: \(1, 1, 1\)"
    raises(ValueError, match, conv, X2, W2, **{name: (1, 1, 1)})
    raises(ValueError, match, im2col, X2, (3, 3), **{name: (1, 1, 1)})
    raises(ValueError, match.replace(r"\(2\)", r"\(1\)").replace("3 entries", "2 entries").replace(
        r"\(1, 1, 1\)", r"\(1, 1\)"), conv, X1, W1, **{name: (1, 1)})  # fmt: skip


def test_wrong_tuple_length_output_padding():
    raises(
        ValueError,
        r"output_padding must have one entry per spatial dimension \(2\), got 1 entries",
        conv_transpose,
        X2,
        W2[:3],
        stride=2,
        output_padding=(1,),
    )


def test_wrong_number_of_padding_pairs():
    raises(
        ValueError,
        r"padding must have one \(before, after\) pair per spatial dimension \(2\), got 1",
        conv,
        X2,
        W2,
        padding=[(1, 1)],
    )


def test_malformed_padding_pair():
    raises(
        ValueError,
        r"padding pairs must be \(before, after\), got \(1, 1, 1\)",
        conv,
        X2,
        W2,
        padding=[(1, 1), (1, 1, 1)],
    )
    raises(ValueError, r"padding pairs must be \(before, after\), got 1", conv, X2, W2, padding=[(1, 1), 1])


# --- channels and groups --------------------------------------------------------------------------


def test_channel_mismatch_input_vs_weight():
    raises(
        ValueError,
        r"input has 4 channels but weight of shape \(6, 3, 3\) with groups=1 expects 3",
        conv,
        X1,
        W1[:, :3],
    )
    raises(
        ValueError,
        r"input has 4 channels but weight of shape \(6, 1, 3\) with groups=2 expects 2",
        conv,
        X1,
        W1[:, :1],
        groups=2,
    )


def test_channel_mismatch_conv_transpose():
    raises(
        ValueError,
        r"input has 4 channels but weight of shape \(3, 2, 3\) expects 3",
        conv_transpose,
        X1,
        W1[:3, :2],
    )


def test_groups_not_dividing_input_channels():
    raises(
        ValueError,
        r"groups=3 must divide both the input channels \(4\) and the output channels \(6\)",
        conv,
        X1,
        W1[:, :1],
        groups=3,
    )


def test_groups_not_dividing_output_channels():
    raises(
        ValueError,
        r"groups=2 must divide both the input channels \(4\) and the output channels \(5\)",
        conv,
        X1,
        W1[:5, :2],
        groups=2,
    )


def test_groups_not_dividing_conv_transpose_input_channels():
    raises(
        ValueError, r"groups=3 must divide.*input channels \(4\)", conv_transpose, X1, W1[:4, :2], groups=3
    )


@pytest.mark.parametrize("groups", [0, -2])
def test_groups_below_one(groups):
    raises(ValueError, rf"groups must be >= 1, got {groups}", conv, X1, W1, groups=groups)
    raises(
        ValueError,
        rf"groups must be >= 1, got {groups}",
        conv_backward,
        np.zeros((2, 6, 4)),
        X1,
        W1,
        groups=groups,
    )
    raises(ValueError, rf"groups must be >= 1, got {groups}", conv_transpose, X1, W1[:4], groups=groups)


@pytest.mark.parametrize("groups", [2.0, True, "2", None])
def test_groups_not_an_int(groups):
    raises(
        TypeError,
        r"groups must be an int, got " + re.escape(repr(groups)),
        conv,
        X1,
        W1[:, :2],
        groups=groups,
    )


# --- shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (1, 1, 1, 4, 4), (4, 4)])
def test_wrong_x_ndim(shape):
    x = np.zeros(shape)
    match = (
        r"input must have shape \(N, C, \*spatial\) or \(C, \*spatial\) with 2 spatial dimension\(s\), "
        rf"i.e. ndim 4 or 3; got shape {re.escape(str(shape))}"
    )
    raises(ValueError, match, conv, x, W2)
    raises(ValueError, match, conv_transpose, x, W2)
    raises(ValueError, match, im2col, x, (3, 3))


@pytest.mark.parametrize("shape", [(2, 2), (3,), ()])
def test_weight_ndim_below_three(shape):
    w = np.zeros(shape)
    match = rf"weight must have shape \(C_out, C_in/groups, \*kernel\).*got shape {re.escape(str(shape))}"
    raises(ValueError, match, conv, X1, w)
    raises(ValueError, match, conv_backward, np.zeros((2, 6, 4)), X1, w)
    raises(ValueError, r"weight must have shape \(C_in, C_out/groups, \*kernel\)", conv_transpose, X1, w)


@pytest.mark.parametrize("shape", [(2, 6, 5), (2, 5, 4), (6, 4), (1, 2, 6, 4)])
def test_grad_output_of_wrong_shape(shape):
    raises(
        ValueError,
        rf"grad_output must have the forward output's shape \(2, 6, 4\), got {re.escape(str(shape))}",
        conv_backward,
        np.zeros(shape),
        X1,
        W1,
    )


def test_grad_output_of_wrong_shape_unbatched():
    raises(
        ValueError,
        r"grad_output must have the forward output's shape \(6, 4\), got \(1, 6, 4\)",
        conv_backward,
        np.zeros((1, 6, 4)),
        X1[0],
        W1,
    )


@pytest.mark.parametrize("shape", [(5,), (6, 1), (), (1, 6)])
def test_bias_of_wrong_shape(shape):
    b = np.zeros(shape)
    match = (
        rf"bias must have shape \(6,\) \(one entry per output channel\), got shape {re.escape(str(shape))}"
    )
    raises(ValueError, match, conv, X1, W1, b)
    raises(ValueError, match, conv_forward, X1, W1, b)
    raises(ValueError, match, conv_transpose, X1, W1.transpose(1, 0, 2).copy(), b)


@pytest.mark.parametrize(
    ("output_padding", "stride", "dilation"),
    [(1, 1, 1), (2, 2, 1), (2, 2, 2), (3, 2, 3), ((0, 2), (2, 2), 1)],
)
def test_output_padding_not_smaller_than_stride_or_dilation(output_padding, stride, dilation):
    raises(
        ValueError,
        r"output_padding \(.*\) must be smaller than either stride \(.*\) or dilation \(.*\)",
        conv_transpose,
        X2,
        W2[:3],
        stride=stride,
        dilation=dilation,
        output_padding=output_padding,
    )


def test_output_padding_smaller_than_dilation_only_is_accepted():
    y = conv_transpose(X1, W1[:4], stride=1, dilation=3, output_padding=2)
    assert y.shape == (2, 4, 6 - 1 + 6 + 2 + 1)


def test_negative_output_padding():
    raises(
        ValueError,
        r"output_padding entries must be >= 0, got -1",
        conv_transpose,
        X1,
        W1[:4],
        output_padding=-1,
    )


def test_conv_transpose_empty_output():
    raises(
        ValueError,
        r"conv_transpose output size \(0,\) is empty",
        conv_transpose,
        X1[..., :1],
        W1[:4],
        padding=[(3, 0)],
    )


@pytest.mark.parametrize("padding", ["full", "causal", ""])
def test_unknown_padding_string(padding):
    match = rf"padding must be 'valid', 'same', an int or a tuple, got the string '{padding}'"
    raises(ValueError, match, conv, X1, W1, padding=padding)
    raises(ValueError, match, im2col, X1, 3, padding=padding)
    raises(ValueError, match, output_size, 6, 3, padding=padding)
    raises(
        ValueError,
        r"padding must be 'valid', an int or a tuple for conv_transpose",
        conv_transpose,
        X1,
        W1[:4],
        padding=padding,
    )


def test_same_padding_rejected_by_conv_transpose():
    raises(
        ValueError,
        r"padding must be 'valid', an int or a tuple for conv_transpose, got 'same'",
        conv_transpose,
        X1,
        W1[:4],
        padding="same",
    )


# --- types ----------------------------------------------------------------------------------------

BAD_DTYPES = [
    pytest.param(np.zeros((2, 4, 6), dtype=object), "object", id="object"),
    pytest.param(np.full((2, 4, 6), "a"), "<U1", id="str"),
    pytest.param(np.zeros((2, 4, 6), dtype="datetime64[s]"), r"datetime64\[s\]", id="datetime"),
]


@pytest.mark.parametrize(("bad", "dtype_name"), BAD_DTYPES)
def test_non_numeric_x(bad, dtype_name):
    match = rf"input must have a bool, integer, floating or complex dtype, got dtype {dtype_name}"
    raises(TypeError, match, conv, bad, W1)
    raises(TypeError, match, conv_forward, bad, W1)
    raises(TypeError, match, conv_backward, np.zeros((2, 6, 4)), bad, W1)
    raises(TypeError, match, conv_transpose, bad, W1[:4])
    raises(TypeError, match, im2col, bad, 3)


@pytest.mark.parametrize(("bad", "dtype_name"), BAD_DTYPES)
def test_non_numeric_weight_bias_grad_output_cols(bad, dtype_name):
    w = bad[:, :, :3]  # shape (2, 4, 3)
    raises(
        TypeError,
        rf"weight must have a bool, integer, floating or complex dtype, got dtype {dtype_name}",
        conv,
        X1[:, :4],
        w[:, :4].reshape(2, 4, 3),
    )
    raises(
        TypeError,
        rf"bias must have a bool, integer, floating or complex dtype, got dtype {dtype_name}",
        conv,
        X1,
        W1,
        bad[0, :, 0].repeat(2)[:6],
    )
    gy = np.resize(bad, (2, 6, 4))
    raises(
        TypeError,
        rf"grad_output must have a bool, integer, floating or complex dtype, got dtype {dtype_name}",
        conv_backward,
        gy,
        X1,
        W1,
    )
    raises(
        TypeError,
        rf"input must have a bool, integer, floating or complex dtype, got dtype {dtype_name}",
        col2im,
        np.resize(bad, (2, 12, 4)),
        6,
        3,
    )


def test_non_numeric_python_objects():
    raises(
        TypeError,
        r"input must have a bool, integer, floating or complex dtype",
        conv,
        [[["a", "b", "c"]]],
        [[[1]]],
    )


@pytest.mark.parametrize("name", ["stride", "dilation"])
@pytest.mark.parametrize("value", [1.0, 2.5, True, False, "2", (1.0,), (True,), None])
def test_non_int_stride_and_dilation(name, value):
    bad = value[0] if isinstance(value, tuple) else value
    match = rf"{name} must be an int.*got {re.escape(repr(bad))}"
    raises(TypeError, match, conv, X1, W1, **{name: value})
    raises(TypeError, match, im2col, X1, 3, **{name: value})
    raises(TypeError, match, conv_transpose, X1, W1[:4], **{name: value})


@pytest.mark.parametrize("value", [1.0, True, (1.5,), [(1, 0.5)], None])
def test_non_int_padding(value):
    raises(TypeError, r"padding must be an int", conv, X1, W1, padding=value)


def test_numpy_integer_arguments_are_accepted():
    y = conv(X1, W1, stride=np.int64(2), padding=np.int32(1), dilation=(np.int16(1),), groups=np.int64(1))
    np.testing.assert_allclose(y, conv(X1, W1, stride=2, padding=1))


# --- col2im and cached columns --------------------------------------------------------------------


NEED = r"but kernel_size \(3,\) and output size \(4,\) need C\*3 rows and 4 columns"
COLS_NDIM = r"input must have shape \(N, C\*prod\(kernel\), L\) or \(C\*prod\(kernel\), L\), got shape "


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((2, 13, 4), r"input has shape \(2, 13, 4\), " + NEED),
        ((2, 12, 5), r"input has shape \(2, 12, 5\), " + NEED),
        ((12, 3), r"input has shape \(12, 3\)"),
        ((1, 2, 12, 4), COLS_NDIM + r"\(1, 2, 12, 4\)"),
        ((48,), COLS_NDIM + r"\(48,\)"),
    ],
)
def test_col2im_wrong_shape(shape, match):
    raises(ValueError, match, col2im, np.zeros(shape), 6, 3)


def test_col2im_wrong_shape_2d():
    raises(ValueError, r"need C\*9 rows and 4 columns", col2im, np.zeros((1, 9, 9)), (5, 5), 3, stride=2)


@pytest.mark.parametrize(
    ("x", "kwargs"),
    [
        (X1[:, :, :5], {}),  # different input size
        (X1[:1], {}),  # different batch size
        (X1, {"stride": 2}),
        (X1, {"padding": 1}),
        (X1, {"dilation": 2}),
    ],
)
def test_columns_from_a_different_geometry(x, kwargs):
    _, columns = conv_forward(X1, W1)
    y = conv(x, W1, **kwargs)
    raises(
        ValueError,
        r"columns were built for input shape \(2, 4, 6\).*groups=1; this call has input shape",
        conv_backward,
        np.zeros(y.shape),
        x,
        W1,
        **kwargs,
        columns=columns,
    )


def test_columns_from_different_groups():
    _, columns = conv_forward(X1, W1[:, :2], groups=2)
    raises(
        ValueError,
        r"columns were built for .*groups=2; this call has .*groups=1",
        conv_backward,
        np.zeros((2, 6, 4)),
        X1,
        W1,
        columns=columns,
    )


def test_columns_of_the_wrong_type():
    cols = im2col(X1, 3)
    raises(
        TypeError,
        r"columns must be the Columns returned by conv_forward, got ndarray",
        conv_backward,
        np.zeros((2, 6, 4)),
        X1,
        W1,
        columns=cols,
    )


def test_conv_geometry_create_errors():
    with pytest.raises(ValueError, match=r"kernel_size entries must be >= 1, got 0"):
        ConvGeometry.create(5, 0)
    with pytest.raises(ValueError, match=r"input_size entries must be >= 0, got -1"):
        ConvGeometry.create(-1, 1, padding=2)
    with pytest.raises(ValueError, match=r"kernel_size must have at least one spatial dimension"):
        ConvGeometry.create((), ())
    with pytest.raises(TypeError, match=r"kernel_size must be an int, got 2.0"):
        output_size(5, 2.0)


def test_conv_transpose_groups_of_wrong_type_named():
    raises(TypeError, "groups must be an int, got None", conv_transpose, X1, W1[:4, :2], groups=None)
