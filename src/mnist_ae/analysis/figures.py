"""The PNG figures. Saved without timestamps or version stamps, so reruns give identical bytes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run in terminals, CI and DVC queues
import matplotlib.pyplot as plt
import numpy as np

_PNG_METADATA = {"Software": None}


def _save(fig: plt.Figure, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100, metadata=_PNG_METADATA)
    plt.close(fig)


def image_strip(images: np.ndarray, padding: int = 2) -> np.ndarray:
    """N x 28 x 28 images side by side on white, `padding` pixels around each (the layout of
    torchvision's make_grid with one row, without importing torchvision: seconds per stage)."""
    count, height, width = images.shape
    strip = np.ones((height + 2 * padding, count * (width + padding) + padding), np.float32)
    for i, image in enumerate(images):
        left = padding + i * (width + padding)
        strip[padding : padding + height, left : left + width] = image
    return strip


def image_rows(
    rows: Sequence[tuple[str, np.ndarray]], path: str | Path, column_titles: Sequence[str] = ()
) -> None:
    """One labelled row per (label, N x 28 x 28 images in [0, 1]), images side by side."""
    count = len(rows[0][1])
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(0.75 * count + 1.4, 0.8 * len(rows) + 0.4), squeeze=False
    )
    for axis, (label, images) in zip(axes[:, 0], rows, strict=True):
        grid = image_strip(np.asarray(images, dtype=np.float32).reshape(-1, 28, 28))
        axis.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if column_titles:
        step = 30  # 28 pixels + 2 padding per column
        axes[0, 0].set_xticks([2 + step * i + 14 for i in range(count)], labels=column_titles)
        axes[0, 0].xaxis.tick_top()
        axes[0, 0].tick_params(length=0, labelsize=8)
    fig.tight_layout()
    _save(fig, path)


def loss_curves(rows: Sequence[dict[str, float]], path: str | Path, loss: str) -> None:
    """Train and validation loss against epoch, from rows of epoch / train_loss / val_loss."""
    epochs = [row["epoch"] for row in rows]
    fig, axis = plt.subplots(figsize=(6, 4))
    axis.plot(epochs, [row["train_loss"] for row in rows], marker="o", label="train")
    axis.plot(epochs, [row["val_loss"] for row in rows], marker="o", label="validation")
    axis.set_xlabel("epoch")
    axis.set_ylabel(f"{loss} loss per pixel")
    axis.grid(alpha=0.3)
    axis.legend()
    fig.tight_layout()
    _save(fig, path)


def _finish_code_size_chart(fig: plt.Figure, axis: plt.Axes, path: str | Path) -> None:
    """Shared look of the charts of test MSE against code size (both axes logarithmic)."""
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("code size (numbers per image)")
    axis.set_ylabel("test MSE per pixel (vs clean image)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def error_vs_code_size(
    pca_sizes: Sequence[int],
    pca_errors: dict[str, Sequence[float]],
    ae_size: int,
    ae_errors: dict[str, float],
    path: str | Path,
) -> None:
    """PCA's test MSE per code size as lines, the autoencoder as one marked point per input kind."""
    fig, axis = plt.subplots(figsize=(6.5, 4.2))
    for (kind, errors), color in zip(pca_errors.items(), ("C0", "C1"), strict=False):
        axis.plot(pca_sizes, errors, marker="o", color=color, label=f"PCA, {kind} input")
        axis.scatter(
            [ae_size],
            [ae_errors[kind]],
            marker="*",
            s=200,
            color=color,
            edgecolor="k",
            zorder=3,
            label=f"autoencoder, {kind} input",
        )
    _finish_code_size_chart(fig, axis, path)


def per_digit_bars(per_task: dict[str, dict[int, float]], path: str | Path) -> None:
    """Test MSE per digit, one bar per task (clean and noisy input) for each digit."""
    digits = sorted(next(iter(per_task.values())))
    width = 0.8 / len(per_task)
    fig, axis = plt.subplots(figsize=(7, 3.8))
    for i, (task, values) in enumerate(per_task.items()):
        positions = [d + (i - (len(per_task) - 1) / 2) * width for d in digits]
        axis.bar(positions, [values[d] for d in digits], width=width, label=task)
    axis.set_xticks(digits)
    axis.set_xlabel("digit")
    axis.set_ylabel("test MSE per pixel")
    axis.grid(alpha=0.3, axis="y")
    axis.legend()
    fig.tight_layout()
    _save(fig, path)


def latent_scatter(points: np.ndarray, labels: np.ndarray, path: str | Path) -> None:
    """2-D projection of the test codes, one colour per digit."""
    fig, axis = plt.subplots(figsize=(6.5, 5.5))
    for digit in range(10):
        chosen = labels == digit
        color = plt.cm.tab10(digit)
        axis.scatter(*points[chosen].T, s=2, alpha=0.5, color=color, label=str(digit))
    axis.set_xlabel("first principal axis of the codes")
    axis.set_ylabel("second principal axis")
    axis.legend(markerscale=6, fontsize=8, title="digit", loc="best")
    fig.tight_layout()
    _save(fig, path)


def score_histogram(
    scores: dict[str, np.ndarray], threshold: float, path: str | Path, title: str
) -> None:
    """Distributions of anomaly scores (log scale) with the decision threshold."""
    fig, axis = plt.subplots(figsize=(6.5, 4))
    every = np.concatenate(list(scores.values()))
    bins = np.geomspace(max(every.min(), 1e-6), every.max(), 80)
    for name, values in scores.items():
        axis.hist(values, bins=bins, alpha=0.55, label=name)
    axis.axvline(threshold, color="k", linestyle="--", label="threshold")
    axis.set_xscale("log")
    axis.set_xlabel("reconstruction MSE per pixel (anomaly score)")
    axis.set_ylabel("images")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def note(text: str, path: str | Path) -> None:
    """A figure that only says why there is no figure (a skipped analysis)."""
    fig, axis = plt.subplots(figsize=(6.5, 1.5))
    axis.axis("off")
    axis.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9)
    _save(fig, path)


def code_size_sweep(rows: Sequence[dict[str, float]], path: str | Path) -> None:
    """Test MSE against code size: the autoencoder trained at each size against PCA."""
    sizes = [row["code_size"] for row in rows]
    fig, axis = plt.subplots(figsize=(6.5, 4.2))
    for task, source, color in (("reconstruction", "clean", "C0"), ("denoising", "noisy", "C1")):
        axis.plot(
            sizes,
            [r[f"pca_{task}_mse"] for r in rows],
            marker="o",
            linestyle="--",
            color=color,
            label=f"PCA, {source} input",
        )
        axis.plot(
            sizes,
            [r[f"autoencoder_{task}_mse"] for r in rows],
            marker="*",
            markersize=10,
            color=color,
            label=f"autoencoder, {source} input",
        )
    _finish_code_size_chart(fig, axis, path)


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """An image in [0, 1] scaled to fit `size` x `size` (its shape kept), centred on white."""
    from PIL import Image

    height, width = image.shape
    scale = size / max(height, width)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    nearest = height <= size and width <= size and size % height == 0 and size % width == 0
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
    pixels = Image.fromarray(np.clip(image, 0, 1).astype(np.float32), mode="F")
    fitted = np.clip(np.asarray(pixels.resize(shape, resample)), 0, 1)
    tile = np.ones((size, size), np.float32)
    top, left = (size - fitted.shape[0]) // 2, (size - fitted.shape[1]) // 2
    tile[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    return tile


SHEET_TILE, SHEET_GAP, SHEET_CAPTION = 84, 10, 18  # pixels; drawn at 100 dpi, one to one


def sheet_box(index: int, per_line: int = 4) -> tuple[int, int, int, int]:
    """Where picture `index` of a contact sheet lies: (left, top, right, bottom) in pixels,
    its three tiles and caption."""
    tile, gap, caption = SHEET_TILE, SHEET_GAP, SHEET_CAPTION
    line, slot = divmod(index, per_line)
    left, top = gap + 3 * slot * (tile + gap), gap + line * (caption + tile + gap)
    return left, top, left + 3 * (tile + gap) - gap, top + caption + tile


def contact_sheet(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    path: str | Path,
    per_line: int = 4,
    not_digits: Sequence[bool] = (),
) -> None:
    """For each (name, picture, denoiser's input, denoised): the three images side by side, the
    file's name above the picture, `per_line` pictures to a line; those `not_digits` marks are
    framed in red, their denoised image captioned "NOT A DIGIT". One image and its captions,
    not an axes per image: 64 pictures take a fraction of a second instead of 9 s."""
    tile, gap, caption = SHEET_TILE, SHEET_GAP, SHEET_CAPTION
    columns = 3 * min(len(rows), per_line)
    lines = -(-len(rows) // per_line)
    width, height = columns * (tile + gap) + gap, lines * (caption + tile + gap) + gap
    sheet = np.ones((height, width), np.float32)
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    axis = fig.add_axes((0, 0, 1, 1))
    axis.axis("off")
    flagged = list(not_digits) + [False] * (len(rows) - len(not_digits))
    for index, (name, *images) in enumerate(rows):
        left, top, right, bottom = sheet_box(index, per_line)
        last = "NOT A DIGIT" if flagged[index] else "denoised"
        titles = (name if len(name) <= 16 else name[:15] + "…", "input", last)
        for offset, (image, title) in enumerate(zip(images, titles, strict=True)):
            x = left + offset * (tile + gap)
            sheet[top + caption : bottom, x : x + tile] = _fit(image, tile)
            colour = "red" if flagged[index] and offset == 2 else "black"
            fig.text((x + tile / 2) / width, 1 - (top + caption - 5) / height, title, fontsize=7,
                     ha="center", va="bottom", color=colour)  # fmt: skip
        if flagged[index]:
            frame = (left - 3) / width, 1 - (bottom + 3) / height
            size = (right - left + 6) / width, (bottom - top + 6) / height
            fig.add_artist(
                plt.Rectangle(frame, *size, transform=fig.transFigure, fill=False,
                              edgecolor="red", linewidth=2)
            )  # fmt: skip
    axis.imshow(sheet, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    _save(fig, path)
