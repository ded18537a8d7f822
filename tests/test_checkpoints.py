"""Per-epoch training checkpoints: keyed by what defines a training, atomic under SIGKILL,
discarded with a warning when damaged, locked against a second identical training, and removed
when idle once the training is complete."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from helpers import training_progress as progress

from mnist_ae.model.checkpoints import CheckpointBusy, TrainingCheckpoint, checkpoint_key

TESTS = Path(__file__).parent
PARAMS = {"train.lr": 0.02, "seed": 42}


def test_the_key_changes_with_params_data_or_code():
    key = checkpoint_key(PARAMS, "data", "code")
    assert key == checkpoint_key(dict(reversed(PARAMS.items())), "data", "code")
    assert key != checkpoint_key(PARAMS | {"train.lr": 0.01}, "data", "code")
    assert key != checkpoint_key(PARAMS, "other data", "code")
    assert key != checkpoint_key(PARAMS, "data", "other code")


def test_a_checkpoint_round_trips_with_its_run(tmp_path):
    store = TrainingCheckpoint(tmp_path, "k")
    assert store.load() is None
    store.save(progress(3), "run-1")
    loaded, run_id = store.load()
    assert run_id == "run-1" and loaded.epoch == 3
    assert [e.epoch for e in loaded.result.history] == [1, 2, 3]
    assert torch.equal(loaded.result.best_state["w"], progress(3).model["w"])
    store.remove()
    assert store.load() is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign"])
def test_a_damaged_or_foreign_checkpoint_is_discarded_with_a_warning(tmp_path, capsys, damage):
    store = TrainingCheckpoint(tmp_path, "k")
    if damage == "foreign":
        TrainingCheckpoint(tmp_path, "another-key").save(progress(2), "r")
        (tmp_path / "another-key.pt").replace(store.path)
    else:
        store.save(progress(2), "r")
        data = bytearray(store.path.read_bytes())
        if damage == "truncate":
            data = data[: len(data) // 2]
        else:
            data[len(data) // 3] ^= 0xFF
        store.path.write_bytes(bytes(data))
    assert store.load() is None  # the train stage then trains as if there were none
    warning = capsys.readouterr().out.strip()
    assert warning.startswith(f"warning: checkpoint {store.path} is unusable (")
    assert warning.endswith("); discarded, training starts over")
    assert not store.path.exists()


def test_a_kill_while_saving_leaves_the_previous_checkpoint_loadable(tmp_path):
    """SIGKILL a process that saves checkpoints back to back, at several moments."""
    saver = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from helpers import training_progress
        from mnist_ae.model.checkpoints import TrainingCheckpoint
        store = TrainingCheckpoint({str(tmp_path)!r}, "k")
        epoch = 1
        while True:
            store.save(training_progress(epoch), "r")
            print(epoch, flush=True)
            epoch += 1
    """)
    store = TrainingCheckpoint(tmp_path, "k")
    for delay in (0.05, 0.2, 0.45):
        process = subprocess.Popen([sys.executable, "-c", saver], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "1"  # the first checkpoint is complete
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        loaded, _ = store.load()
        assert loaded.epoch >= 1 and torch.all(loaded.model["w"] == loaded.epoch)
    store.save(progress(1), "r")  # the next save removes what the killed ones left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pt"]


def test_a_second_training_with_the_same_key_is_refused(tmp_path):
    with TrainingCheckpoint(tmp_path, "k").locked():
        busy = pytest.raises(CheckpointBusy, match="same params, data and code is running")
        with busy, TrainingCheckpoint(tmp_path, "k").locked():
            pass
        with TrainingCheckpoint(tmp_path, "other").locked():
            pass  # another training: no conflict


def test_an_idle_checkpoint_is_discarded_and_a_busy_one_kept(tmp_path):
    store = TrainingCheckpoint(tmp_path, "k")
    assert store.discard_if_idle() is False  # nothing there
    store.save(progress(1), "r")
    with TrainingCheckpoint(tmp_path, "k").locked():
        assert store.discard_if_idle() is False and store.path.exists()  # a training holds it
    assert store.discard_if_idle() is True
    assert sorted(p.name for p in tmp_path.iterdir()) == []
