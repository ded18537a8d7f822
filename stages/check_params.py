"""DVC stage `check-params`: validate the whole params.yaml (and that the device it names exists)
before DVC touches any stage's outputs. DVC deletes a stage's outputs before running it, so a bad
value caught by the stage itself would already have cost the last good run's model; every stage
depends on this one, whose output stays the same whenever the params are valid."""

from __future__ import annotations

from pathlib import Path

from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.devices import select_device
from mnist_ae.params import load_params
from mnist_ae.storage import atomic_path, write_json


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="the (unchanging) verdict file")
    args = parser.parse_args()
    params = load_params(args.params)
    select_device(params.train.device)  # train.device: cuda on a machine without one
    with atomic_path(args.out) as tmp:
        write_json(tmp, {"params": "valid"})
    print(f"{args.params}: valid")


if __name__ == "__main__":
    run_stage(main)
