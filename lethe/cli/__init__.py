"""Lethe's command line (Typer): each command calls one library function and renders its result."""
