"""Import and export: COCO (``coco``), labelme (``labelme``), YOLO segmentation (``yolo``, export only)
and PNG masks (``png_masks``, export only). Each module reads/writes a
:class:`~efficientsam_studio.annotations.document.Document` and returns a report of what it did."""
