"""Thin `akri-dh` subcommand modules: argparse set-up here, heavy imports inside run()."""
