"""The team stack: PostgreSQL, SeaweedFS (S3) and an MLflow server, started from what the
project installs, state and secrets in a git-ignored folder.

python3 dev.py stack up      # start what is not running (state in .stack/, kept across down)
python3 dev.py stack env     # the export lines a shell needs: eval "$(python3 dev.py stack env)"
python3 dev.py stack status  # what runs where
python3 dev.py stack down    # stop exactly the processes `up` started

May import: plumbing.
"""
