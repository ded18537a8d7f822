"""The tidy stage: what a killed stage left behind is closed or removed, even when DVC then
restores that stage's outputs from its run-cache instead of running it again.

MLflow runs of this checkout left RUNNING by a process that is gone are marked FAILED, and the
checkpoint of the training whose outputs are in place (its key is in run.json) is removed unless
a process is training with it. DVC runs this stage after every training (run.json changes) and
whenever the checkpoints folder changed since its last run, which is what a killed training
leaves.
"""

from __future__ import annotations

from pathlib import Path

from mnist_ae.model.checkpoints import TrainingCheckpoint
from mnist_ae.tracking import runs, store
from mnist_ae.tracking.run_record import RunRecord


def tidy(root: Path, experiment: str, record: RunRecord, checkpoints: Path) -> list[str]:
    """Close abandoned runs and remove the finished training's checkpoint; say what was done."""
    done = []
    experiment_id = store.connect(experiment, root)
    for run_id in runs.close_abandoned_runs(experiment_id, root):
        done.append(f"MLflow run {run_id} was left RUNNING by a killed process: marked FAILED")
    checkpoint = TrainingCheckpoint(root / checkpoints, record.checkpoint_key)
    if checkpoint.discard_if_idle():
        done.append(f"removed {checkpoint.path}: its training is complete (run {record.run_id})")
    return done
