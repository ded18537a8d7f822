"""What each DVC stage does, composed from the subpackages below: the train stage, what the
stages after it share, the promotion, the tidying after a kill. The scripts in stages/ parse
their arguments and call these.

May import: tracking, analysis, model, data, plumbing.
"""
