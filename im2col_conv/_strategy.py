"""Which strategy each pass of a layer takes, by the layer's shape.

Every strategy computes the same sums (the tests and the equivalence proof
check each one); the rules below only pick the fastest for a shape, as
measured by ``benchmarks/bench.py`` and recorded on the performance page.
The thresholds are module constants so that tests and the proof can move
them and send small geometries down every path.
"""

from __future__ import annotations

from .geometry import ConvGeometry

__all__ = [
    "FUSED_MIN_CHANNELS",
    "FUSED_MIN_SAMPLE_BYTES",
    "PER_SAMPLE_MAX_PRODUCT",
    "PHASE_SPLIT_MIN_WINDOWS",
    "STRATEGY",
    "WIDE_MAX_OUTPUT_CHANNELS",
    "WIDE_MAX_WINDOWS",
    "WIDE_MIN_COLUMNS_PER_OUTPUT",
    "fused",
    "per_sample",
    "phase_split",
    "shifted",
    "wide_col2im",
]

#: From this many input channels per group on, the column gradient is made one
#: kernel offset at a time and added at once, while it is in cache: one
#: ``(C_in/g, C_out/g) @ (C_out/g, nb * L)`` product per offset instead of one
#: tall product whose ``prod(kernel)`` times larger result has left the cache
#: before col2im reads it. With fewer channels the small products lose more
#: than the cache gains (measured in ``benchmarks/``).
FUSED_MIN_CHANNELS = 64

#: ... and while one sample's column gradient takes at least this many bytes:
#: a smaller one stays in cache whole, and the one tall product is faster
#: (the 256-channel 14x14 stride-2 layer's backward: 20 against 25 ms fused;
#: level on the 128-channel 28x28 layer, 20 % slower on the 64-channel 56x56 one).
FUSED_MIN_SAMPLE_BYTES = 1 << 20

#: ``"columns"`` (the default) runs every pass that is not a 1x1 one with im2col
#: columns, by the rules below; ``"shifted"`` runs them with the shifted
#: strategy of `im2col_conv._shifted` (for tests, the equivalence proof and
#: benchmarks). The shifted strategy is not chosen by shape: its products
#: accumulate inside SciPy's BLAS, whose thread pool and NumPy's slow each other
#: down when a layer's products alternate between them (`im2col_conv._products`).
STRATEGY = "columns"

#: The backward's col2im adds whole rows on the wide grid of the input's
#: phases (`im2col_conv._wide`), instead of one short strided run per output
#: row, sample and channel, when the last axis has fewer windows than this
#: (longer runs already add at full speed), ...
WIDE_MAX_WINDOWS = 32

#: ... a position's column gradient has at least this many entries per
#: output-gradient entry (``C_in/g * prod(kernel)`` over ``C_out/g``), since
#: the wide grid costs a second copy of the output gradient and a pass
#: writing the phases back, which only many short additions saved repay, ...
WIDE_MIN_COLUMNS_PER_OUTPUT = 2

#: ... and the layer has at most this many output channels per group: the
#: product ``W^T @ delta`` runs over the wide grid's extra positions too
#: (18 per 16 on the CIFAR layer, 8 per 7 on the 256-channel one), and the
#: more output channels, the more that costs. Measured on the backward, one
#: thread, CPU time, the two variants alternating in one process (minimum /
#: median, wide over plain): CIFAR 0.87 / 0.97 in float32 and 0.93 / 0.96 in
#: float64; 256 channels 1.01 / 1.06 and 1.04 / 1.12; 128 channels 1.00 /
#: 0.99; MNIST (9 column entries per 8 output entries) 1.27 / 1.25 in float64
#: (``docs/performance.md``).
WIDE_MAX_OUTPUT_CHANNELS = 64

#: The col2im of a layer strided along its last axis adds into that axis's
#: phases (`_polyphase`: contiguous additions, one strided pass back) from this
#: many windows along it on. On shorter rows the extra pass costs more than the
#: contiguity gains (measured in ``benchmarks/``: 1.8x faster col2im on the
#: 224x224 stem, 1.2x slower on the 32x32 CIFAR layer).
PHASE_SPLIT_MIN_WINDOWS = 32

#: A forward tile whose product for one sample (and group) takes at most this
#: many multiply-adds multiplies each sample's columns on its own, straight
#: into the output: for such small products the one tile-wide product gains
#: nothing, and its result must be transposed into place (the MNIST layer,
#: 49 thousand per sample: 0.81 of the tile-wide time on one thread, 0.90 to
#: 1.11 over two in four runs). Larger ones are each split over BLAS's threads, and a
#: synchronisation per sample costs more than the transpose saves: on the
#: CIFAR layer (614 thousand per sample) the one tile-wide product took 0.72
#: to 0.98 of the per-sample time over two threads, in three runs
#: (``docs/performance.md``).
PER_SAMPLE_MAX_PRODUCT = 1 << 18


def fused(c_in_per_group: int, sample_bytes: int) -> bool:
    """Whether the column gradient is made and added one kernel offset at a time.

    ``sample_bytes`` is the size of one sample's whole column gradient.
    """
    return c_in_per_group >= FUSED_MIN_CHANNELS and sample_bytes >= FUSED_MIN_SAMPLE_BYTES


def per_sample(weights_per_group: int, positions: int) -> bool:
    """Whether a forward tile multiplies each sample on its own, into the output.

    ``positions`` is the number of output positions of one sample.
    """
    return weights_per_group * positions <= PER_SAMPLE_MAX_PRODUCT


def phase_split(geometry: ConvGeometry, grid: tuple[int, ...]) -> bool:
    """Whether the col2im of a tile adds into the phases of its strided last axis."""
    return geometry.stride[-1] > 1 and grid[-1] >= PHASE_SPLIT_MIN_WINDOWS and grid == geometry.output_size


def shifted() -> bool:
    """Whether the passes of a layer with a kernel larger than 1x1 run the shifted strategy."""
    return STRATEGY == "shifted"


def wide_col2im(grid: tuple[int, ...], columns_per_position: int, c_out_per_group: int, whole: bool) -> bool:
    """Whether the col2im of a backward pass adds on the wide grid (`_wide`).

    ``grid`` is the window grid, ``columns_per_position`` is
    ``C_in/g * prod(kernel)``; ``whole``: the windows are those of the
    forward convolution (not the smaller grid of a transposed convolution's
    ``output_padding``).
    """
    short = grid[-1] < WIDE_MAX_WINDOWS
    thin = c_out_per_group <= WIDE_MAX_OUTPUT_CHANNELS
    return whole and short and thin and columns_per_position >= WIDE_MIN_COLUMNS_PER_OUTPUT * c_out_per_group
