"""`python -m tunedeck`: the `tunedeck` command from a checkout, without `pip install .`."""

from tunedeck.cli import main

main(prog_name="tunedeck")
