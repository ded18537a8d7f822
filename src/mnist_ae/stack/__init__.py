"""The team stack: PostgreSQL, SeaweedFS (S3) and an MLflow server, started from what the
project installs, state and secrets in a git-ignored folder readable by its owner only.

python3 dev.py stack up                 # on 127.0.0.1: this machine only, no logins
python3 dev.py stack up --host ADDRESS  # for a team: TLS, logins and roles (docs/team-stack.md)
python3 dev.py stack user add NAME --role reader|writer    # (and remove, list)
python3 dev.py stack env [--user NAME]  # export lines: eval "$(python3 dev.py stack env)"
python3 dev.py stack status             # what runs where
python3 dev.py stack down               # stop exactly the processes `up` started

May import: plumbing.
"""
