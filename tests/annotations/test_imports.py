"""The annotation package stays free of Qt and torch (the batch tools and the trainer rely on it)."""

from __future__ import annotations

import subprocess
import sys


def test_annotation_package_imports_neither_qt_nor_torch():
    modules = [
        "efficientsam_studio.annotations",
        "efficientsam_studio.annotations.document",
        "efficientsam_studio.annotations.commands",
        "efficientsam_studio.annotations.category_commands",
        "efficientsam_studio.annotations.undo_stack",
        "efficientsam_studio.annotations.storage",
        "efficientsam_studio.annotations.masks",
        "efficientsam_studio.annotations.project",
        "efficientsam_studio.annotations.formats.coco",
        "efficientsam_studio.annotations.formats.labelme",
        "efficientsam_studio.annotations.formats.yolo",
        "efficientsam_studio.annotations.formats.png_masks",
    ]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + (
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'torch', 'PyQt5', 'PyQt6')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
