"""Grids: their records, the runner that submits their cells, contact sheets."""
