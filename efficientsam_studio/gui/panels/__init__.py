"""Dock panels: file list, categories, instances."""
