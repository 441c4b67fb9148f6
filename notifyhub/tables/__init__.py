"""Faust tables: their definitions and the logic that reads them."""
