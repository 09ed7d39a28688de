"""`python -m p2p <command>`: the command line, in `p2p.lab.cli` (see README.md)."""

import sys

from p2p.lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
