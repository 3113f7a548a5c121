"""`python -m dgc` == `dgc`."""

from .cli import main

main()
