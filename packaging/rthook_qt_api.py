"""PyInstaller runtime hook: tell qtpy (used by qtawesome) to use PySide6, the only binding bundled."""

import os

os.environ.setdefault("QT_API", "pyside6")
