"""The desktop app (PySide6). Nothing here runs a model on the GUI thread or imports torch.

Entry point: :func:`efficientsam_studio.gui.app.run_app`. Pieces: ``main_window`` (composition),
``canvas`` (view, tiled rasters, overlays), ``tools`` (AI, polygon, brush/eraser), ``panels`` (files,
categories, instances), ``dialogs``, ``engine_service`` (the model in a worker thread), ``session``
(document, undo stack, current image), ``autosave``, ``settings``.
"""
