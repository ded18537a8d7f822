"""The train stage's record of its training, `run.json` beside model.pt: the MLflow run, the
registered version, the SHA-256 of the weights and of the registered files, and the key of its
training checkpoint. Later stages
read it before any work; a missing or broken record is named with the way to recover."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from mnist_ae.plumbing.outputs import write_json
from mnist_ae.tracking.runs import RETRAIN
from mnist_ae.tracking.store import TrackingError

RUN_RECORD = "run.json"  # in the train stage's model folder


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    registered_model: str
    version: str
    model_uri: str
    weights_sha256: str  # of model.pt's weights
    model_sha256: str  # of the registered model's files, as MLflow stores them
    checkpoint_key: str

    def write(self, path: Path) -> None:
        write_json(path, asdict(self))


def read_run_record(path: Path) -> RunRecord:
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise TrackingError(f"{path}: missing; run the train stage: dvc repro train") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrackingError(f"{path}: not valid JSON ({error}); {RETRAIN}") from None
    names = [field.name for field in fields(RunRecord)]
    if not isinstance(record, dict):
        record = {}
    bad = [name for name in names if not isinstance(record.get(name), str)]
    if bad:
        raise TrackingError(
            f"{path}: not the train stage's record (no {', '.join(bad)}); {RETRAIN}"
        )
    return RunRecord(**{name: record[name] for name in names})
