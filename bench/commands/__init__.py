"""One module per `bench` subcommand (see bench/cli.py)."""
