"""Command-line interface (click). Commands are thin shells over library functions."""
