"""Analysis of a trained model: image-quality metrics, the test-set evaluation, PCA and the
comparison with it, the latent space, anomaly detection, and the figures.

May import: model, data, plumbing.
"""
