"""Thin command-line layer: each module registers one command group and calls one library function."""
