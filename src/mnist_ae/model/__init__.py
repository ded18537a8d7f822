"""Model and training: the networks, the training loop and its progress, the device and its fast
path, the model file (model.pt), and the per-epoch training checkpoints.

The networks, the loop, its progress and the devices import only torch (and the data
subpackage's pixels): the GPU benchmark runs them with a plain torch install.

May import: data, plumbing.
"""
