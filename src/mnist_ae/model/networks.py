"""The autoencoders: the origin article's network (`seed`) and ours with a dense code (`conv`).

Imports only torch: the GPU benchmark runs with a plain torch install.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network before loading its weights."""

    arch: str
    latent_dim: int


class Autoencoder(nn.Module):
    """encoder -> code -> decoder -> logits; `forward` returns pixels in [0, 1]."""

    encoder: nn.Module
    decoder: nn.Module
    code_size: int

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output: losses use it for numerically stable cross-entropy."""
        return self.decoder(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class SeedAutoencoder(Autoencoder):
    """The origin article's Keras network, layer for layer: its code is 7x7x32 = 1,568 numbers."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 3, padding=1),
        )
        self.code_size = 32 * 7 * 7


def _conv_block(cin: int, cout: int, stride: int = 1, transpose: bool = False) -> list[nn.Module]:
    """3x3 convolution (transposed to upsample), batch norm, SiLU."""
    if transpose:
        conv = nn.ConvTranspose2d(cin, cout, 3, stride=stride, padding=1, output_padding=stride - 1)
    else:
        conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
    return [conv, nn.BatchNorm2d(cout), nn.SiLU()]


class ConvAutoencoder(Autoencoder):
    """A 16-channel convolution at full resolution (it sees the noise before any striding), then
    two 3x3 convolutions per resolution (28 -> 14 -> 7, 32 then 64 channels), all with batch norm
    and SiLU, around a dense bottleneck of `latent_dim` numbers. The decoder goes back up the same
    way (transposed convolutions upsample) but has no counterpart to the full-resolution stem: a
    transposed convolution from 14x14 gives the 28x28 output."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            *_conv_block(1, 16),  # 16 x 28 x 28
            *_conv_block(16, 32, stride=2),
            *_conv_block(32, 32),  # 32 x 14 x 14
            *_conv_block(32, 64, stride=2),
            *_conv_block(64, 64),  # 64 x 7 x 7
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 64 * 7 * 7),
            nn.SiLU(),
            nn.Unflatten(1, (64, 7, 7)),
            *_conv_block(64, 64),
            *_conv_block(64, 32, stride=2, transpose=True),  # 32 x 14 x 14
            *_conv_block(32, 32),
            nn.ConvTranspose2d(32, 1, 3, stride=2, padding=1, output_padding=1),  # 1 x 28 x 28
        )
        self.code_size = latent_dim


def build_model(config: ModelConfig) -> Autoencoder:
    """A new network of `config`, initialised from torch's current random state."""
    if config.arch == "seed":
        return SeedAutoencoder()
    if config.arch == "conv":
        return ConvAutoencoder(config.latent_dim)
    raise ValueError(f"unknown architecture {config.arch!r} (expected 'seed' or 'conv')")
