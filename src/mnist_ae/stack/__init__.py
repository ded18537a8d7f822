"""The team stack: PostgreSQL, SeaweedFS (S3), an MLflow server and the registrar that signs
versions, started from what the project installs, with its state and secrets in a git-ignored
folder readable by its owner only. Its command line is `python3 dev.py stack` (`__main__.py`).

May import: plumbing, tracking.
"""
