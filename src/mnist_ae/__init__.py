"""Convolutional autoencoders on MNIST, tracked with DVC and MLflow."""
