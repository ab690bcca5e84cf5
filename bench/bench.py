"""`python bench/bench.py ...` runs the same benchmark as `python -m convlab.bench ...` (see there)."""
import sys

from convlab.bench import main

if __name__ == "__main__":
    sys.exit(main())
