from .cli import main

if __name__ == "__main__":  # guard: worker processes re-import the main module
    raise SystemExit(main())
