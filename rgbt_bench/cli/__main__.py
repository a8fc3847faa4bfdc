"""`python -m rgbt_bench.cli ...` (used under torchrun, which runs a module, not a console script)."""
from . import main

main()
