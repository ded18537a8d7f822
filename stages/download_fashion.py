"""DVC stage `download-fashion`: Fashion-MNIST's test set, the out-of-distribution images of the
anomaly analysis (with `data.test_limit`, a stratified subset of that size, as preprocess takes
of MNIST's test set). If no source can deliver it, the stage says so and succeeds, leaving only a
note: the anomaly analysis is then skipped and the rest of the pipeline still completes."""

from __future__ import annotations

from pathlib import Path

from mnist_ae.data.sources import DataSourceError, fetch_fashion
from mnist_ae.data.splits import OOD_MISSING, Split, save_split, stratified_subset
from mnist_ae.plumbing.cli import run_stage, stage_arguments
from mnist_ae.plumbing.outputs import atomic_path, write_json
from mnist_ae.plumbing.params import load_params


def record(path: Path, available: bool) -> None:
    with atomic_path(path) as tmp:
        write_json(tmp, {"available": available})


def main() -> None:
    args = stage_arguments(__doc__, out="folder for test.npz", record="whether it was had")
    params = load_params(args.params)

    with atomic_path(args.out, is_dir=True) as tmp:
        try:
            arrays, served_by = fetch_fashion(
                params.anomaly.source, params.anomaly.local_dir, params.data.mirror_timeout
            )
        except DataSourceError as exc:
            (tmp / OOD_MISSING).write_text(f"{exc}\n")
            record(args.record, available=False)
            print(f"Fashion-MNIST unavailable, the anomaly analysis will be skipped: {exc}")
            return
        test = Split(arrays["test_images"], arrays["test_labels"])
        if params.data.test_limit is not None:
            test = stratified_subset(test, params.data.test_limit, params.seed)
        save_split(tmp / "test.npz", test)
        record(args.record, available=True)
    print(
        f"Fashion-MNIST test set ({len(test):,}) verified from source '{served_by}' -> {args.out}"
    )


if __name__ == "__main__":
    run_stage(main)
