"""The bounds of the run settings that command-line flags share (--seed, --max-seq-len).

A module of plain constants, so the CLI can build its options from them without importing
the config schema (and YAML) at startup.
"""

from __future__ import annotations

# Upper bounds that keep every value far from what breaks downstream: steps and seeds must
# fit the store's 32-bit integers and torch's generators, sizes must fit in memory.
MAX_STEPS_LIMIT = 10**9
BATCH_SIZE_LIMIT = 65_536
MAX_SEQ_LEN_LIMIT = 1_048_576
MIN_SEQ_LEN = 16
SEED_LIMIT = 2**31 - 1
TOKENS_PER_STEP_LIMIT = 10**9
