"""Helpers the unit and end-to-end tests share, one module per subject, so that no test module
imports another: run folders and result files to build, matrices to write, processes to look for."""
