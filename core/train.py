"""Entry point of the detached trainer: `python -m core.train RUN_DIR`.

Kept separate from core.training so that `import core.train` (for its docstring, or by a
test walking the package) costs nothing until main() runs.
"""

from __future__ import annotations

import sys


def main() -> int:
    from core.training.trainer import main as train_main

    return train_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
