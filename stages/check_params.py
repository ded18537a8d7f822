"""DVC stage `check-params`: validate the whole params.yaml (and that the device it names exists)
before DVC touches any stage's outputs. DVC deletes a stage's outputs before running it, so a bad
value caught by the stage itself would already have cost the last good run's model; every stage
depends on this one, whose output stays the same whenever the params are valid."""

from __future__ import annotations

from mnist_ae.plumbing.cli import run_stage, stage_arguments
from mnist_ae.plumbing.outputs import atomic_path, write_json
from mnist_ae.plumbing.params import load_params


def main() -> None:
    args = stage_arguments(__doc__, out="the verdict file (the same for every valid file)")
    params = load_params(args.params)
    if params.train.device not in ("auto", "cpu"):  # only a named accelerator can be missing
        from mnist_ae.model.devices import select_device  # torch: 1.5 s of a stage's 2

        select_device(params.train.device)  # train.device: cuda on a machine without one
    with atomic_path(args.out) as tmp:
        write_json(tmp, {"params": "valid"})
    print(f"{args.params}: valid")


if __name__ == "__main__":
    run_stage(main)
