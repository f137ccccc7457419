"""Data checks: each finds one kind of problem in a chat dataset.

One module per check (its id, severities, one-line doc and code, as `CHECK`), all listed
in `registry.py`; `base.py` holds what they share, `minhash.py` and `boilerplate.py` the
text comparison the cross-row checks use.
"""
