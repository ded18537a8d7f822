"""Convolutional autoencoders on MNIST, tracked with MLflow and chained with DVC.

The subpackages are the concerns, each importing only those below it (tests/test_layers.py):

    pipeline    what each DVC stage does, composed from the rest
    tracking    the MLflow store, runs, epoch log, run record, registry, champion
    analysis    metrics, evaluation, PCA, latent space, anomaly detection, figures
    model       networks, training loop, devices, model file, training checkpoints
    data        IDX, sources, unpickling, splits, noise, pixels
    plumbing    params, outputs, errors, signals, digests, process liveness, repo root
    stack       the team stack: PostgreSQL, SeaweedFS and an MLflow server

User tools are the modules beside them: `python -m mnist_ae.denoise` (your own pictures) and
`python -m mnist_ae.sweep` (the code-size sweep).
"""
