"""Dialogs: shortcuts help, settings, export, import, weights (download or pick a file)."""
