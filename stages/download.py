"""DVC stage `download`: the four MNIST files, in IDX format, from the source in params."""

from __future__ import annotations

from pathlib import Path

from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.idx import encode_idx
from mnist_ae.params import load_params
from mnist_ae.sources import IDX_FILES, fetch_mnist
from mnist_ae.storage import atomic_path, write_json


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for the IDX files")
    parser.add_argument(
        "--record",
        type=Path,
        required=True,
        help="JSON noting which source served; not a DVC output, so dvc.lock is network-free",
    )
    args = parser.parse_args()
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
