"""DVC stage `download`: the four MNIST files, in IDX format, from the source in params."""

from __future__ import annotations

from mnist_ae.data.idx import IDX_FILES, encode_idx
from mnist_ae.data.sources import fetch_mnist
from mnist_ae.plumbing.cli import run_stage, stage_arguments
from mnist_ae.plumbing.outputs import atomic_path, write_json
from mnist_ae.plumbing.params import load_params


def main() -> None:
    args = stage_arguments(
        __doc__,
        out="folder for the IDX files",
        record="which source served (not a DVC output: dvc.lock stays network-free)",
    )
    data = load_params(args.params).data

    arrays, served_by = fetch_mnist(data.source, data.local_dir, data.mirror_timeout)
    with atomic_path(args.out, is_dir=True) as tmp:
        for name, filename in IDX_FILES.items():
            (tmp / filename).write_bytes(encode_idx(arrays[name]))
    with atomic_path(args.record) as tmp:
        write_json(tmp, {"requested": data.source, "served_by": served_by})
    print(f"MNIST verified (SHA-256 of all four arrays) from source '{served_by}' -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
