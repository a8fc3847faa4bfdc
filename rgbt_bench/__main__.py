"""`python -m rgbt_bench ...`: the same command line as the `rgbt-bench` console script."""
from .cli import main

main()
