"""Serving a fine-tuned sentiment checkpoint over HTTP (Flask behind waitress) and load-testing it."""
