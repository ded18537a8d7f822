"""The team stack: PostgreSQL, SeaweedFS (S3), an MLflow server, the registrar that signs
versions and, on a network address, nginx in front of them, started from what the project
installs, with its state and secrets in a git-ignored folder readable by its owner only. Its
command line is `python3 dev.py stack` (`__main__.py`).

May import: plumbing, tracking.
"""
