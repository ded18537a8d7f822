"""Stage plumbing: params, outputs, errors, signals, digests, process liveness, the repository root.

May import: nothing else of mnist_ae.
"""
