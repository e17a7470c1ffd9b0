"""The labelling document, Qt-free and torch-free: images, categories, instances (COCO RLE masks),
undoable commands, crash-safe project files and COCO / labelme / YOLO / PNG import and export.

Import what you need from the submodules (``annotations.document``, ``annotations.commands``,
``annotations.masks``, ``annotations.project``, ``annotations.formats.coco`` ...); this package file
only re-exports the document records so that ``import efficientsam_studio.annotations`` stays cheap.
"""

from efficientsam_studio.annotations.document import (
    Category,
    Change,
    Document,
    ImageRecord,
    ImageStatus,
    Instance,
)

__all__ = ["Category", "Change", "Document", "ImageRecord", "ImageStatus", "Instance"]
