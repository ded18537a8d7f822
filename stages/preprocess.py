"""DVC stage `preprocess`: validated IDX -> stratified train / val split + test, as .npz."""

from __future__ import annotations

from mnist_ae.data.splits import (
    read_raw,
    save_split,
    split_path,
    stratified_subset,
    train_val_split,
)
from mnist_ae.plumbing.cli import run_stage, stage_arguments
from mnist_ae.plumbing.outputs import atomic_path
from mnist_ae.plumbing.params import load_params


def main() -> None:
    args = stage_arguments(__doc__, raw="the IDX files", out="folder for the splits")
    params = load_params(args.params)

    train, test = read_raw(args.raw)
    if params.data.limit is not None:
        train = stratified_subset(train, params.data.limit, params.seed)
    if params.data.test_limit is not None:
        test = stratified_subset(test, params.data.test_limit, params.seed)
    # Validation comes out of the training images: the test set stays unseen until evaluate.
    train, val = train_val_split(train, params.data.val_fraction, params.seed)
    splits = {"train": train, "val": val, "test": test}
    with atomic_path(args.out, is_dir=True) as tmp:
        for name, split in splits.items():
            save_split(split_path(tmp, name), split)
    print(", ".join(f"{name} {len(split):,}" for name, split in splits.items()), "->", args.out)


if __name__ == "__main__":
    run_stage(main)
