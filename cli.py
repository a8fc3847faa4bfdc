"""Entry point for `python cli.py ...`; the installed `rgbt-bench` command runs the same group."""
from rgbt_bench.cli import main

if __name__ == "__main__":
    main()
