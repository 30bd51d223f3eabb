import sys

from flows_tui.cli import main

if __name__ == "__main__":  # `python -m flows_tui.cli`; spawned Dask workers need this guard
    sys.exit(main())
