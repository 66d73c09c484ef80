import sys

from .program import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
