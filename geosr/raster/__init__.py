"""Rasters on disk: grids and windows, tiling, reading, writing, the tile store (no torch)."""
