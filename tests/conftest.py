"""Shared fixtures. GUI tests run offscreen; tests make their own tiny inputs."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
