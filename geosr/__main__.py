"""``python -m geosr`` runs the command line (the same as the ``geosr`` script)."""

from geosr.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="geosr")
