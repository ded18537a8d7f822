"""The params audit of the end-to-end test, outside the production code: Python imports this file
at the start of every process whose PYTHONPATH holds this folder. When MNIST_AE_PARAMS_AUDIT
names a file, a stage script appends to it, as it exits, the params keys it read after loading
them (`train.lr`, `seed`): the test compares them with the keys dvc.yaml lists for the stage."""

import os
import sys

AUDIT = os.environ.get("MNIST_AE_PARAMS_AUDIT")

if AUDIT and sys.argv and sys.argv[0].endswith(".py"):
    import atexit
    import json
    from pathlib import Path

    from pydantic import BaseModel

    from mnist_ae.plumbing import params as schema

    read: set[str] = set()
    loaded = []  # validation reads fields too: only reads after loading count
    sections = {
        field.annotation: name
        for name, field in schema.Params.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }
    plain_get = schema._Section.__getattribute__

    def recording_get(self, name):
        value = plain_get(self, name)
        kind = type(self)
        if loaded and name in kind.model_fields:
            if kind is schema.Params:
                if not isinstance(value, BaseModel):
                    read.add(name)
            else:
                read.add(f"{sections[kind]}.{name}")
        return value

    plain_load = schema.load_params

    def load_params(path):
        params = plain_load(path)
        loaded.append(True)
        return params

    def write() -> None:
        line = json.dumps({"script": Path(sys.argv[0]).name, "read": sorted(read)}) + "\n"
        with open(AUDIT, "a") as handle:
            handle.write(line)

    schema._Section.__getattribute__ = recording_get
    schema.load_params = load_params
    atexit.register(write)
