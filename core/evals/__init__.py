"""Evaluation: scoring model outputs, comparing two evals, and the release gate.

Pure functions and frozen records, no store and no UI: `scorers` turns a spec into a scorer,
`stats` compares per-example scores of a baseline and a candidate, `gate` applies a gate spec
to those comparisons.
"""
