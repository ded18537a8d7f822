"""Tracking: the MLflow store, the runs (the train stage's own, and a child run for each later
stage), the epoch log, the train stage's run record, the model registry, the signing of its
versions, the registrar and the champion rule.

May import: plumbing.
"""
