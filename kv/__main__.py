"""`python -m kv`: the `kv` REPL (see `kv.cli`)."""

from kv.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
