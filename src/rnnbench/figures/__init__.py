"""Figures built from the tables only (never from the runs themselves)."""
