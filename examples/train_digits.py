"""Train a small CNN on scikit-learn's 8x8 digits with im2col_conv's ``Conv`` layer.

The two convolutions and the two 2x2 max poolings come from the library;
everything else -- ReLU, the linear classifier, softmax cross-entropy and SGD
with momentum -- is written out below in plain NumPy. On the first batch the script checks that
the layers' im2col backward and the direct (dilate-pad-rotate) backward give
the same gradients, and says so.

Run it from the repository root after ``pip install -e ".[examples]"``::

    python examples/train_digits.py                      # 30 epochs, about 97-99% test accuracy
    python examples/train_digits.py --plot curves.png    # also save loss/accuracy curves
    python examples/train_digits.py --epochs 10 --seed 1

The digits data set (1797 images) ships inside scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from im2col_conv.layer import Conv
from im2col_conv.pool_layers import MaxPool

try:  # the progress bar is optional: without tqdm the script prints one line per epoch
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover - exercised only without tqdm installed
    tqdm = None

Array = NDArray[Any]
DTYPE = np.float32


# -- data --------------------------------------------------------------------------------------------


def load_data(seed: int, test_fraction: float = 0.2) -> tuple[Array, Array, Array, Array]:
    """The digits as ``(N, 1, 8, 8)`` float32 images, standardised, split stratified into train/test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(DTYPE)[:, np.newaxis]  # (1797, 1, 8, 8), values 0..16
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[Array]:
    """Shuffled index batches covering ``range(n)`` once."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


# -- the parts of the network that are not convolutions ------------------------------------------------


def relu_forward(z: Array) -> tuple[Array, Array]:
    mask = z > 0
    return z * mask, mask


def relu_backward(grad: Array, mask: Array) -> Array:
    return grad * mask


def softmax_cross_entropy(logits: Array, labels: Array) -> tuple[float, Array]:
    """Mean cross-entropy of the softmax of ``logits``, and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(labels)
    loss = -float(log_probs[np.arange(n), labels].mean())
    grad = np.exp(log_probs)
    grad[np.arange(n), labels] -= 1
    return loss, grad / n


# -- the model ---------------------------------------------------------------------------------------


class DigitsCNN:
    """conv 3x3 (1->16) - ReLU - maxpool 2 - conv 3x3 (16->32) - ReLU - maxpool 2 - linear (128->10).

    Shapes for a batch of N: (N, 1, 8, 8) -> (N, 16, 8, 8) -> (N, 16, 4, 4) -> (N, 32, 4, 4)
    -> (N, 32, 2, 2) -> (N, 128) -> (N, 10).
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.conv1 = Conv(1, 16, kernel_size=3, padding=1, rng=rng)
        self.conv2 = Conv(16, 32, kernel_size=3, padding=1, rng=rng)
        self.pool1, self.pool2 = MaxPool(2), MaxPool(2)  # 2x2 windows, stride 2
        bound = 1 / np.sqrt(128)  # PyTorch's default for nn.Linear, like Conv's
        self.fc_weight = rng.uniform(-bound, bound, size=(10, 128)).astype(DTYPE)
        self.fc_bias = rng.uniform(-bound, bound, size=10).astype(DTYPE)
        self._cache: dict[str, Array] = {}

    @property
    def convs(self) -> list[Conv]:
        return [self.conv1, self.conv2]

    def forward(self, x: Array) -> Array:
        c = self._cache
        h, c["relu1"] = relu_forward(self.conv1(x))
        h = self.pool1(h)
        h, c["relu2"] = relu_forward(self.conv2(h))
        h = self.pool2(h)
        c["flat"] = h.reshape(len(h), -1)
        return c["flat"] @ self.fc_weight.T + self.fc_bias

    def backward(self, grad_logits: Array) -> dict[str, Array]:
        """Backpropagate ``dL/dlogits``; return every parameter's gradient (and ``dL/dx``)."""
        c = self._cache
        grads = {"fc_weight": grad_logits.T @ c["flat"], "fc_bias": grad_logits.sum(axis=0)}
        g = (grad_logits @ self.fc_weight).reshape(-1, 32, 2, 2)
        g = relu_backward(self.pool2.backward(g), c["relu2"])
        g = self.conv2.backward(g)
        g = relu_backward(self.pool1.backward(g), c["relu1"])
        grads["input"] = self.conv1.backward(g)
        for name, layer in (("conv1", self.conv1), ("conv2", self.conv2)):
            for key, grad in layer.named_gradients():  # ("weight", dL/dweight), ("bias", dL/dbias)
                assert grad is not None
                grads[f"{name}_{key}"] = grad
        return grads

    def parameters(self) -> dict[str, Array]:
        params = {"fc_weight": self.fc_weight, "fc_bias": self.fc_bias}
        for name, layer in (("conv1", self.conv1), ("conv2", self.conv2)):
            # The layers' own arrays: the optimiser updates them in place.
            params.update((f"{name}_{key}", value) for key, value in layer.named_parameters())
        return params

    def train(self, mode: bool = True) -> None:
        """Training mode, or evaluation mode, in which the layers keep nothing for a backward pass."""
        for layer in (self.conv1, self.pool1, self.conv2, self.pool2):
            layer.train(mode)

    def predict(self, x: Array, batch_size: int = 512) -> Array:
        self.train(False)
        try:
            logits = [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        finally:
            self.train(True)
        return np.concatenate([z.argmax(axis=1) for z in logits])


class SGDMomentum:
    """``v = momentum * v + grad; p -= lr * v`` (PyTorch's form), updating the arrays in place."""

    def __init__(self, params: dict[str, Array], lr: float, momentum: float) -> None:
        self.params, self.lr, self.momentum = params, lr, momentum
        self.velocity = {name: np.zeros_like(p) for name, p in params.items()}

    def step(self, grads: dict[str, Array]) -> None:
        for name, p in self.params.items():
            v = self.velocity[name]
            v *= self.momentum
            v += grads[name]
            p -= self.lr * v


def compare_backward_methods(model: DigitsCNN, grad_logits: Array) -> float:
    """Backpropagate one batch with the im2col and with the direct backward; return the largest
    relative difference ``||g_im2col - g_direct|| / ||g_im2col||`` over all gradients."""
    im2col = model.backward(grad_logits)
    for layer in model.convs:
        layer.backward_method = "direct"
    try:
        direct = model.backward(grad_logits)  # the forward caches are still in place
    finally:
        for layer in model.convs:
            layer.backward_method = "im2col"
    return max(
        float(np.linalg.norm(im2col[k] - direct[k]) / max(np.linalg.norm(im2col[k]), 1e-30)) for k in im2col
    )


# -- training ----------------------------------------------------------------------------------------


def train(
    epochs: int = 30,
    seed: int = 0,
    batch_size: int = 32,
    lr: float = 0.05,
    momentum: float = 0.9,
    train_subset: int | None = None,
    progress: bool = True,
    check_backward: bool = True,
    blas_threads: int | None = 1,
) -> dict[str, Any]:
    """Train the CNN and return its metrics.

    Parameters
    ----------
    epochs, seed, batch_size, lr, momentum
        The run's settings; ``seed`` fixes the split, the initial weights and the batch order.
    train_subset : int, optional
        Train on only the first ``train_subset`` training images (for quick tests).
    progress : bool
        Show a progress bar (tqdm, if installed) or, without tqdm, one line per epoch.
    check_backward : bool
        On the first batch, compare the im2col and direct backward methods.
    blas_threads : int or None
        Threads BLAS may use while training (None: leave BLAS alone). The matrix products here are
        small, so extra threads gain nothing and cost a lot on a busy machine. Needs threadpoolctl,
        which scikit-learn installs; without it the setting is ignored.

    Returns
    -------
    dict
        ``train_loss`` and ``test_accuracy`` (one entry per epoch), ``final_test_accuracy``,
        ``backward_rel_diff`` (None if not checked) and ``seconds`` (wall time of the training).
    """
    with _limit_blas_threads(blas_threads):
        return _train(epochs, seed, batch_size, lr, momentum, train_subset, progress, check_backward)


def _limit_blas_threads(n: int | None) -> contextlib.AbstractContextManager[Any]:
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")  # type: ignore[no-any-return]


def _train(
    epochs: int,
    seed: int,
    batch_size: int,
    lr: float,
    momentum: float,
    train_subset: int | None,
    progress: bool,
    check_backward: bool,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    x_train, x_test, y_train, y_test = load_data(seed)
    if train_subset is not None:
        x_train, y_train = x_train[:train_subset], y_train[:train_subset]
    model = DigitsCNN(rng)
    optimizer = SGDMomentum(model.parameters(), lr=lr, momentum=momentum)
    history: dict[str, Any] = {"train_loss": [], "test_accuracy": [], "backward_rel_diff": None}

    steps_per_epoch = -(-len(x_train) // batch_size)
    bar = tqdm(total=epochs * steps_per_epoch, unit="batch", desc="training") if progress and tqdm else None
    start = time.perf_counter()
    for epoch in range(epochs):
        lr_now = lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))  # cosine decay over the run
        optimizer.lr = float(lr_now)
        losses = []
        for idx in batches(len(x_train), batch_size, rng):
            loss, grad_logits = softmax_cross_entropy(model.forward(x_train[idx]), y_train[idx])
            if check_backward and history["backward_rel_diff"] is None:
                diff = compare_backward_methods(model, grad_logits)
                history["backward_rel_diff"] = diff
                verdict = "agree" if diff < 1e-4 else "DISAGREE"
                message = (
                    f"first batch: im2col and direct backward {verdict} "
                    f"(max relative difference {diff:.1e} over all gradients, {model.conv1.dtype})"
                )
                (bar.write if bar is not None else print)(message)
                if diff >= 1e-4:
                    raise RuntimeError(message)
            optimizer.step(model.backward(grad_logits))
            losses.append(loss)
            if bar is not None:
                bar.update()
        accuracy = float((model.predict(x_test) == y_test).mean())
        history["train_loss"].append(float(np.mean(losses)))
        history["test_accuracy"].append(accuracy)
        if bar is not None:
            bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses):.4f}", test_acc=f"{accuracy:.4f}")
        elif progress:
            print(f"epoch {epoch + 1:3d}/{epochs}  loss {np.mean(losses):.4f}  test accuracy {accuracy:.4f}")
    if bar is not None:
        bar.close()
    history["seconds"] = time.perf_counter() - start
    history["final_test_accuracy"] = history["test_accuracy"][-1] if epochs else float("nan")
    history["n_train"], history["n_test"] = len(x_train), len(x_test)
    return history


def save_plot(history: dict[str, Any], path: str) -> None:
    """Save the per-epoch training loss and test accuracy side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, history["train_loss"])
    ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)", yscale="log", title="Loss")
    ax_acc.plot(epochs, history["test_accuracy"])
    ax_acc.axhline(0.97, color="grey", linestyle=":", label="97%")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Exit status: 0 after training (files are written only with --plot), 2 for bad arguments.",
    )
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training set (default 30)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for the split, weights and batches (default 0)"
    )
    parser.add_argument("--plot", metavar="PATH", help="save the loss and accuracy curves to this image file")
    parser.add_argument(
        "--blas-threads", type=int, default=1, help="threads for BLAS; 0 leaves BLAS's default (default 1)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.blas_threads < 0:
        parser.error(f"--blas-threads must be >= 0, got {args.blas_threads}")

    history = train(
        epochs=args.epochs,
        seed=args.seed,
        progress=not args.no_progress,
        blas_threads=args.blas_threads or None,
    )
    print(
        f"final test accuracy {history['final_test_accuracy']:.2%} "
        f"({history['n_test']} test images, {args.epochs} epochs, {history['seconds']:.1f} s)"
    )
    if args.plot:
        save_plot(history, args.plot)
        print(f"saved loss and accuracy curves to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
