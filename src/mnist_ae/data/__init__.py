"""Data: the IDX format, where MNIST and Fashion-MNIST come from, safe unpickling, the split
files, seeded noise, and how pixels are scaled and scored.

May import: plumbing.
"""
