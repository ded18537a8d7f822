"""DVC stage `compare-pca`: the linear baseline. PCA fitted once on the clean training images,
scored on the test set at every code size of the sweep and at the model's own."""

from __future__ import annotations

from pathlib import Path

import torch

from mnist_ae.analysis.comparison import save_pca_report
from mnist_ae.analysis.pca import PCA, pca_scores
from mnist_ae.data.pixels import to_unit
from mnist_ae.data.splits import load_split, split_path
from mnist_ae.model.devices import select_device
from mnist_ae.model.networks import ModelConfig, build_model
from mnist_ae.plumbing.cli import run_stage, stage_arguments
from mnist_ae.plumbing.outputs import publish_files
from mnist_ae.plumbing.params import load_params


def main() -> None:
    args = stage_arguments(__doc__, processed="clean splits", noisy="noisy splits", out="reports")
    params = load_params(args.params)
    device = select_device(params.train.device)

    code_size = build_model(ModelConfig(params.model.arch, params.model.latent_dim)).code_size

    def pixels(folder: Path, split: str) -> torch.Tensor:
        return to_unit(load_split(split_path(folder, split)).images).to(device)

    # One eigendecomposition on the device serves every code size.
    pca = PCA.fit(pixels(args.processed, "train"))
    sizes = sorted(set(params.compare_pca.code_sizes) | {code_size})
    rows = pca_scores(pca, sizes, pixels(args.processed, "test"), pixels(args.noisy, "test"))
    with publish_files(args.out) as out:
        save_pca_report(out, rows, code_size)
    at_code = next(row for row in rows if row["code_size"] == code_size)
    denoising, reconstruction = at_code["denoising_psnr"], at_code["reconstruction_psnr"]
    print(
        f"PCA at {len(sizes)} code sizes; at the model's {code_size}: denoising "
        f"{denoising:.3f} dB, reconstruction {reconstruction:.3f} dB"
    )


if __name__ == "__main__":
    run_stage(main)
