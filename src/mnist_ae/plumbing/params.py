"""The one schema for params.yaml: every stage validates the whole file before doing any work."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mnist_ae.plumbing.errors import PipelineError


class ParamsError(PipelineError, ValueError):
    """params.yaml is missing, unreadable or invalid; the message names the offending key."""


class _Section(BaseModel):
    # strict: "1e-3" (a YAML string) is not silently a float; forbid: `trian.epochs` is an error.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataParams(_Section):
    source: Literal["auto", "mirrors", "pypi", "local"] = "auto"
    local_dir: str | None = None
    mirror_timeout: float = Field(5.0, gt=0, le=600)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    limit: int | None = Field(None, ge=100, le=60_000)
    test_limit: int | None = Field(None, ge=100, le=10_000)

    @model_validator(mode="after")
    def _local_needs_dir(self) -> DataParams:
        if self.source == "local" and not self.local_dir:
            raise ValueError("data.local_dir must name a directory when data.source is 'local'")
        return self


class NoiseParams(_Section):
    std: float = Field(0.4, ge=0, le=5)


class ModelParams(_Section):
    arch: Literal["conv", "seed"] = "conv"
    latent_dim: int = Field(32, ge=1, le=4096)


class TrainParams(_Section):
    loss: Literal["psnr", "bce", "mse", "l1"] = "psnr"
    lr: float = Field(0.04, gt=0, le=1)
    epochs: int = Field(9, ge=1, le=10_000)
    batch_size: int = Field(128, ge=1, le=65_536)
    denoise: bool = True
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # auto: bf16 autocast on CUDA, fp32 elsewhere (the same model on every CPU); bf16 is an
    # explicit choice that pays on CPUs with native bf16 (AVX-512 BF16, AMX)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False  # torch.compile (with CUDA graphs on CUDA): pays for long runs
    schedule: Literal["onecycle", "constant"] = "onecycle"  # learning rate over the steps
    fresh_noise: bool = True  # new noise (noise.std) each batch instead of add-noise's copy

    @model_validator(mode="after")
    def _fresh_noise_needs_denoising(self) -> TrainParams:
        if self.fresh_noise and not self.denoise:
            raise ValueError("train.fresh_noise needs train.denoise: true (it makes noisy inputs)")
        return self


class EvaluateParams(_Section):
    batch_size: int = Field(1000, ge=1, le=65_536)


class LatentParams(_Section):
    interpolate: list[int] = Field(default_factory=lambda: [3, 7], min_length=2, max_length=2)
    steps: int = Field(10, ge=2, le=50)

    @field_validator("interpolate")
    @classmethod
    def _digits(cls, digits: list[int]) -> list[int]:
        if any(not 0 <= d <= 9 for d in digits):
            raise ValueError("interpolate between two digits from 0 to 9")
        return digits


class AnomalyParams(_Section):
    source: Literal["auto", "debian", "mirrors", "local"] = "auto"
    local_dir: str | None = None
    false_alarm_rate: float = Field(0.01, gt=0, lt=1)

    @model_validator(mode="after")
    def _local_needs_dir(self) -> AnomalyParams:
        if self.source == "local" and not self.local_dir:
            raise ValueError(
                "anomaly.local_dir must name a directory when anomaly.source is 'local'"
            )
        return self


class ComparePcaParams(_Section):
    code_sizes: list[int] = Field(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128], min_length=1)

    @field_validator("code_sizes")
    @classmethod
    def _valid_sizes(cls, sizes: list[int]) -> list[int]:
        if any(not 1 <= k <= 784 for k in sizes):
            raise ValueError("every code size must be between 1 and 784 (the number of pixels)")
        if len(set(sizes)) != len(sizes):
            raise ValueError("code sizes must not repeat")
        return sorted(sizes)


class MlflowParams(_Section):
    experiment: str = Field("mnist-autoencoder", min_length=1)
    registered_model: str = Field("mnist-denoising-ae", min_length=1)


class Params(_Section):
    seed: int = Field(42, ge=0, le=2**32 - 1)
    data: DataParams = DataParams()
    noise: NoiseParams = NoiseParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    latent: LatentParams = LatentParams()
    anomaly: AnomalyParams = AnomalyParams()
    compare_pca: ComparePcaParams = ComparePcaParams()
    mlflow: MlflowParams = MlflowParams()


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (a typo? see params.yaml for the valid keys)"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def parse_params(raw: Any, source: str = "params") -> Params:
    """Validate an already-loaded mapping; raise ParamsError naming every offending key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = "\n".join(f"  {_describe(e)}" for e in exc.errors())
        raise ParamsError(f"{source}: invalid params\n{lines}") from None


def load_params(path: str | Path) -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, str(path))


def flatten(params: Params, keys: Iterable[str] | None = None) -> dict[str, Any]:
    """Params as {"train.lr": 0.001, ...}, the form MLflow logs: the given keys, a section
    name standing for all of its keys (default: everything)."""
    flat: dict[str, Any] = {}
    for key in type(params).model_fields if keys is None else keys:
        section, _, name = key.partition(".")
        value = getattr(params, section)
        if name:
            flat[key] = getattr(value, name)
        elif isinstance(value, BaseModel):
            flat.update(
                {f"{section}.{field}": getattr(value, field) for field in type(value).model_fields}
            )
        else:
            flat[key] = value
    return flat
