import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_ae.plumbing.params import Params, ParamsError, flatten, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]


def repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def with_value(section: str, key: str, value) -> dict:
    raw = repo_params()
    raw[section][key] = value
    return raw


def test_repo_params_are_valid_and_are_the_schema_defaults():
    assert load_params(REPO / "params.yaml") == Params()


@pytest.mark.parametrize(
    ("raw_change", "named"),
    [
        (lambda raw: raw.update(trian={"epochs": 3}), "trian: unknown key"),
        (lambda raw: raw["train"].update(epoch=3), "train.epoch: unknown key"),
        (lambda raw: raw["train"].update(epochs="3"), "train.epochs"),
        (lambda raw: raw["train"].update(epochs=0), "train.epochs"),
        (lambda raw: raw["train"].update(lr="1e-3"), "train.lr"),  # YAML reads 1e-3 as a string
        (lambda raw: raw["train"].update(loss="hinge"), "train.loss"),
        (lambda raw: raw["train"].update(denoise="yes"), "train.denoise"),
        (lambda raw: raw["data"].update(val_fraction=1.5), "data.val_fraction"),
        (lambda raw: raw["data"].update(limit=5), "data.limit"),
        (lambda raw: raw["noise"].update(std=-0.1), "noise.std"),
        (lambda raw: raw["model"].update(arch="vae"), "model.arch"),
        (lambda raw: raw["compare_pca"].update(code_sizes=[4, 1000]), "compare_pca.code_sizes"),
        (lambda raw: raw["compare_pca"].update(code_sizes=[4, 4]), "compare_pca.code_sizes"),
        (lambda raw: raw.update(seed=-1), "seed"),
    ],
)
def test_invalid_params_name_the_key(raw_change, named):
    raw = repo_params()
    raw_change(raw)
    with pytest.raises(ParamsError) as caught:
        parse_params(raw, "params.yaml")
    assert named in str(caught.value)


def test_fresh_noise_requires_denoising():
    raw = with_value("train", "fresh_noise", True)
    raw["train"]["denoise"] = False
    with pytest.raises(ParamsError, match=r"fresh_noise needs train\.denoise"):
        parse_params(raw)


def test_local_source_requires_a_directory():
    with pytest.raises(ParamsError, match="local_dir"):
        parse_params(with_value("data", "source", "local"))


def test_every_error_is_reported_at_once():
    raw = with_value("train", "epochs", 0)
    raw["noise"]["std"] = -1
    with pytest.raises(ParamsError) as caught:
        parse_params(raw)
    message = str(caught.value)
    assert "train.epochs" in message and "noise.std" in message


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ParamsError, match="mapping"):
        load_params(bad)


def test_code_sizes_are_sorted():
    assert parse_params(with_value("compare_pca", "code_sizes", [8, 2])).compare_pca.code_sizes == [
        2,
        8,
    ]


def test_flatten_gives_dotted_keys():
    flat = flatten(Params())
    assert flat["train.lr"] == 0.04 and flat["noise.std"] == 0.4 and flat["seed"] == 42
    assert set(flatten(Params(), ("evaluate",))) == {"evaluate.batch_size"}


def test_a_stage_with_a_bad_key_exits_nonzero_naming_it_and_writes_nothing(tmp_path):
    raw = repo_params()
    raw["trian"] = {"epochs": 3}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / "processed"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "stages" / "preprocess.py"),
            "--params",
            str(params),
            "--raw",
            str(tmp_path / "raw"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "trian: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
