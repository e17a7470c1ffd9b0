"""Dialogs: shortcuts help, settings, export, weights (download or pick a file)."""
