"""An independent check of how the public functions read ``stride``, ``padding`` and ``dilation``.

Both sides of `prove_geometry` read the same normalised geometry, so a
slip in the normalisation (padding pairs read as ``(after, before)``, the odd
element of ``"same"`` put first, a wrong output size) would pass it. This
module checks the normalisation against the rules PyTorch and TensorFlow
document, written here again from their definitions and sharing no code with
[`im2col_conv.geometry`][im2col_conv.geometry]:

* output size ``floor((n + before + after - dilation * (k - 1) - 1) / stride) + 1``
  (``torch.nn.Conv1d``, "Shape");
* an int or a sequence of ints pads both sides by that amount; ``"valid"`` is no padding;
* ``(before, after)`` pairs: ``conv(x, padding=((b, a),))`` equals
  ``conv(numpy.pad(x, (b, a)), padding=0)``;
* ``"same"``: TensorFlow's rule, which this library documents: output
  ``ceil(n / stride)``, total padding ``max((out - 1) * stride + dilation * (k - 1) + 1 - n, 0)``
  with the odd element after.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..convolution import conv
from ..geometry import output_size
from .engine_sweep import same_pairs
from .results import Identity

__all__ = ["check_normalisation"]


def _torch_output(n: int, k: int, s: int, before: int, after: int, d: int) -> int:
    return (n + before + after - d * (k - 1) - 1) // s + 1


def _cases() -> list[tuple[int, int, int, int]]:
    return [
        (n, k, s, d)
        for n, k, s, d in itertools.product(range(1, 9), range(1, 5), range(1, 4), range(1, 3))
        if d * (k - 1) + 1 <= n + 6
    ]


def _first(problems: list[str]) -> str:
    return "" if not problems else f"{len(problems)} disagreements, first: {problems[0]}"


def check_normalisation() -> tuple[Identity, ...]:
    """Check output sizes, symmetric, paired and ``"same"`` padding against the documented rules.

    Returns
    -------
    tuple of Identity
        One per rule; ``coefficients`` counts the cases compared.

    Examples
    --------
    >>> all(identity.held for identity in check_normalisation())
    True
    """
    rng = np.random.default_rng(5)
    sizes, padded, same = [], [], []
    count_sizes = count_padded = count_same = 0
    for n, k, s, d in _cases():
        x = rng.integers(-9, 10, size=(1, 1, n))
        w = rng.integers(-9, 10, size=(1, 1, k))
        for before, after in itertools.product(range(4), repeat=2):
            expected = _torch_output(n, k, s, before, after, d)
            if expected < 1:
                continue
            count_sizes += 1
            got = output_size(n, k, stride=s, padding=((before, after),), dilation=d)
            if got != (expected,):
                sizes.append(f"n={n} k={k} s={s} d={d} pad=({before}, {after}): {got} vs ({expected},)")
            count_padded += 1
            keywords: dict[str, Any] = {"stride": s, "dilation": d}
            paired = conv(x, w, padding=((before, after),), **keywords)
            explicit = conv(np.pad(x, ((0, 0), (0, 0), (before, after))), w, padding=0, **keywords)
            symmetric_ok = before != after or np.array_equal(conv(x, w, padding=before, **keywords), paired)
            if not (np.array_equal(paired, explicit) and symmetric_ok):
                padded.append(f"n={n} k={k} s={s} d={d} padding=(({before}, {after}),)")
        count_same += 1
        before, after = same_pairs(n, k, s, d)
        by_rule = conv(np.pad(x, ((0, 0), (0, 0), (before, after))), w, stride=s, dilation=d)
        by_name = conv(x, w, stride=s, padding="same", dilation=d)
        if by_name.shape[-1] != -(-n // s) or not np.array_equal(by_name, by_rule):
            same.append(f'n={n} k={k} s={s} d={d}: padding="same" is not ({before}, {after})')
        valid = {"stride": s, "dilation": d}
        fits = d * (k - 1) + 1 <= n
        if fits and not np.array_equal(conv(x, w, padding="valid", **valid), conv(x, w, padding=0, **valid)):
            same.append(f'n={n} k={k} s={s} d={d}: padding="valid" is not 0')
    return (
        Identity(
            "output size", "floor((n + b + a - d(k-1) - 1) / s) + 1", not sizes, count_sizes, _first(sizes)
        ),
        Identity(
            "padding pairs",
            "((b, a),) pads b before and a after; an int pads both",
            not padded,
            count_padded,
            _first(padded),
        ),
        Identity(
            'padding "same"', "output ceil(n / s), the odd element after", not same, count_same, _first(same)
        ),
    )
