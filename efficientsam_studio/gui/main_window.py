"""The main window: composition of the canvas, tools, panels, dialogs, status bar and autosave.

It holds no labelling logic of its own: tools edit through the :class:`Session`, the engine runs in
:class:`EngineService`'s worker thread, and the annotation core saves and exports.

Closing the window while the batch dialog runs asks whether to stop the run (a termination request,
:meth:`MainWindow.request_quit`, stops it without asking): the run stops after the image it is working
on, its finished images are saved, and the window then closes as usual. Closing it during an export
asks likewise; the export stops after the image it is writing (a COCO file is then not written).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QWidget

from efficientsam_studio.annotations.commands import SetImageStatus
from efficientsam_studio.annotations.document import ImageStatus
from efficientsam_studio.gui.actions import build_actions
from efficientsam_studio.gui.dialogs.export import ExportDialog
from efficientsam_studio.gui.dialogs.settings_dialog import SettingsDialog
from efficientsam_studio.gui.dialogs.shortcuts import ShortcutsDialog
from efficientsam_studio.gui.engine_service import EngineService
from efficientsam_studio.gui.import_flow import ImportFlow
from efficientsam_studio.gui.menus import build_menus_and_toolbar
from efficientsam_studio.gui.model_controller import ModelController
from efficientsam_studio.gui.open_flow import ask_open_path, open_with_dialogs, skipped_files_text
from efficientsam_studio.gui.opening import project_file_for, target_problem
from efficientsam_studio.gui.settings import StudioSettings, save_settings
from efficientsam_studio.gui.statusbar import StudioStatusBar
from efficientsam_studio.gui.tools.base import Tool
from efficientsam_studio.gui.window_state import restore_docks, restore_window_state, save_window_state
from efficientsam_studio.gui.workspace import Workspace

# actions that need an open project; the others (open, settings, quit, help) always work
PROJECT_ACTIONS = (
    "save import export undo redo accept cycle cancel remove_last delete relabel merge tool_ai tool_polygon "
    "tool_brush tool_eraser batch next_image previous_image mark_done mark_review mark_skipped "
    "zoom_in zoom_out fit actual_size"
).split()
EMPTY_HINT = "Open a folder of images, an image or a project (Ctrl+O)"

if TYPE_CHECKING:
    from efficientsam_studio.gui.batch_dialog import BatchDialog


class MainWindow(QMainWindow):
    """The studio's window; ``open_path`` loads a folder, an image or a project."""

    def __init__(
        self, settings: StudioSettings, engine: EngineService | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("EfficientSAM Studio")
        self.settings = settings
        self.engine = engine if engine is not None else EngineService()
        self.model = ModelController(self.engine, settings, self)
        self.workspace: Workspace | None = None
        self.tool: Tool | None = None
        self.batch_dialog: BatchDialog | None = None  # the open batch dialog
        self._close_after_batch = False  # a close waits for the batch run to stop
        self.export_dialog: ExportDialog | None = None  # the open export dialog (not modal)
        self.importer = ImportFlow(self)  # File → Import annotations
        self._quit_requested = False
        self.status = StudioStatusBar(self)
        self.setStatusBar(self.status)
        self.actions = build_actions(self, self._handlers())
        self.tool_group, self.brush_size = build_menus_and_toolbar(self, self.actions, settings.brush_size)
        self.brush_size.valueChanged.connect(self._set_brush_size)
        self._docks: list[QDockWidget] = []
        self.model.status.connect(self.show_message)
        self.model.model_changed.connect(lambda info: self.status.set_model(info, "not loaded"))
        self.engine.encode_started.connect(self.status.encoding_started)  # bound: they end with the bar
        self.engine.image_ready.connect(self.status.encoding_ended)
        self.engine.failed.connect(self.status.encoding_ended)
        self.engine.precompute_progress.connect(self.status.set_precompute)
        for number in range(1, 10):
            shortcut = QShortcut(QKeySequence(str(number)), self)
            shortcut.activated.connect(lambda n=number: self._session_call("set_category_by_number", n))
        self._show_empty_state()
        restore_window_state(self)  # size, place and toolbar of the last run

    # ----- construction -----
    def _handlers(self) -> dict:
        ws = lambda: self.workspace  # noqa: E731
        return {
            "open": self._ask_open,
            "save": self.save,
            "import": lambda: self.importer.start(),
            "export": self.show_export,
            "settings": self.show_settings,
            "quit": self.close,
            "undo": lambda: ws() and ws().session.undo(),
            "redo": lambda: ws() and ws().session.redo(),
            "accept": self.accept,
            "cycle": lambda: ws() and ws().ai.cycle(),
            "cancel": lambda: self.tool and self.tool.cancel(),
            "remove_last": lambda: self.tool and self.tool.remove_last(),
            **{k: lambda k=k: ws() and ws().instances.act(k) for k in ("delete", "relabel", "merge")},
            "tool_ai": lambda: self.set_tool("ai"),
            "tool_polygon": lambda: self.set_tool("polygon"),
            "tool_brush": lambda: self.set_tool("brush"),
            "tool_eraser": lambda: self.set_tool("eraser"),
            "brush_smaller": lambda: self._resize_brush(0.8),
            "brush_larger": lambda: self._resize_brush(1.25),
            "next_image": lambda: self.step_image(1),
            "previous_image": lambda: self.step_image(-1),
            "mark_done": lambda: self.mark_image(ImageStatus.DONE),
            "mark_review": lambda: self.mark_image(ImageStatus.NEEDS_REVIEW),
            "mark_skipped": lambda: self.mark_image(ImageStatus.SKIPPED),
            "zoom_in": lambda: ws() and ws().canvas.zoom_by(1.25),
            "zoom_out": lambda: ws() and ws().canvas.zoom_by(0.8),
            "fit": lambda: ws() and ws().canvas.fit(),
            "actual_size": lambda: ws() and ws().canvas.actual_size(),
            "help": lambda: ShortcutsDialog(self).exec(),
            "batch": self.show_batch,
        }

    # ----- projects -----
    def open_path(self, path: str | Path) -> bool:
        """Open a folder, an image or a project; a refusal (lock, corrupt file) is shown in a dialog.

        The open project stays open until the new one has opened: a refused open changes nothing."""
        problem = target_problem(path)
        if problem:  # said before any question about the open project
            QMessageBox.critical(self, "Cannot open", problem)
            return False
        if self.workspace is not None:
            busy = self._busy_message()
            if busy:
                self.show_message(busy)
                return False
            if self._is_open_project(path):
                return self._close_workspace() and self._open(path)
            if not self._confirm_unsaved():
                return False
        return self._open(path, replace=True)

    def _open(self, path: str | Path, replace: bool = False) -> bool:
        opened = open_with_dialogs(self, path)
        if opened is None:
            return False
        if replace:
            self._close_workspace(ask=False)
        project, first_image = opened
        self._install_workspace(Workspace(self, project), first_image)
        skipped = skipped_files_text(project.last_scan)
        if skipped:
            QMessageBox.warning(self, "Some images were left out", skipped)
        return True

    def _is_open_project(self, path: str | Path) -> bool:
        found = project_file_for(path)
        ws = self.workspace
        return ws is not None and found is not None and found.resolve() == ws.project.path.resolve()

    def _install_workspace(self, ws: Workspace, first_image: str | None) -> None:
        self.workspace = ws
        self.setCentralWidget(ws.canvas)  # deletes the empty-state hint
        for title, widget, area in (
            ("Files", ws.files, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("Categories", ws.categories, Qt.DockWidgetArea.RightDockWidgetArea),
            ("Instances", ws.instances, Qt.DockWidgetArea.RightDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock-{title.lower()}")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self._docks.append(dock)
        restore_docks(self)  # where the user left them
        ws.session.error.connect(self.show_message)
        ws.images.status.connect(self.show_message)
        ws.autosave.failed.connect(self.show_message)
        ws.autosave.saved.connect(self._update_title)
        ws.canvas.zoom_changed.connect(self.status.set_zoom)
        ws.canvas.cursor_moved.connect(self.status.set_position)
        ws.canvas.cleared.connect(self.status.clear_view)
        for tool in ws.tools.values():
            tool.status.connect(self.show_message)
        ws.ai.model_needed.connect(self.model.offer_weights)
        ws.ai.busy_changed.connect(self.status.set_waiting_for)
        self._enable_project_actions(True)
        ws.session.undo_stack.canUndoChanged.connect(self.actions["undo"].setEnabled)
        ws.session.undo_stack.canRedoChanged.connect(self.actions["redo"].setEnabled)
        self.actions["undo"].setEnabled(False)
        self.actions["redo"].setEnabled(False)
        ws.session.document_changed.connect(lambda _c: self._update_title())
        ws.session.read_only = ws.project.read_only
        if ws.project.read_only:
            ws.autosave.set_delay(0)
            self.actions["save"].setEnabled(False)
        self.status.set_read_only(ws.project.read_only)
        self.set_tool("ai")
        images = ws.project.document.images
        record = ws.project.document.image_by_path(first_image) if first_image else None
        ws.session.set_current_image(record.id if record else images[0].id if images else None)
        self._update_title()
        notes = []
        if ws.project.missing_images:
            notes.append(f"{len(ws.project.missing_images)} images missing")
        if ws.project.last_scan is not None and ws.project.last_scan.unreadable:
            notes.append(f"{len(ws.project.last_scan.unreadable)} unreadable files left out")
        self.show_message(f"Opened {ws.project.path}" + (f": {', '.join(notes)}" if notes else ""))
        ws.canvas.setFocus(Qt.FocusReason.OtherFocusReason)  # the single-key shortcuts work at once

    def _close_workspace(self, ask: bool = True) -> bool:
        """Close the open project (``ask``: through the batch and unsaved-changes guards; False when
        the user keeps it open)."""
        ws = self.workspace
        if ws is None:
            return True
        busy = self._busy_message() if ask else None
        if busy:
            self.show_message(busy)
            return False
        if ask and not self._confirm_unsaved():
            return False
        if self.batch_dialog is not None:
            self.batch_dialog.reject()
        if self.export_dialog is not None:
            self.export_dialog.stop()
            self.export_dialog.close()
        self.importer.stop()  # a file being read is dropped
        for signal in (ws.canvas.zoom_changed, ws.canvas.cursor_moved, ws.canvas.cleared):
            signal.disconnect()  # the canvas goes away; its last resize must not reach the status bar
        ws.autosave.stop()
        ws.images.shutdown()
        ws.session.close()
        ws.project.close()
        for dock in self._docks:
            self.removeDockWidget(dock)
            dock.deleteLater()
        self._docks = []
        self.workspace = None
        self.tool = None
        self._show_empty_state()  # replaces (and deletes) the canvas
        self.status.set_waiting_for("")
        self.status.set_read_only(False)
        self.status.clear_view()
        self.status.clearMessage()
        self._update_title()
        return True

    def _show_empty_state(self) -> None:
        """No project: a hint in the middle, and the commands that need a project disabled."""
        hint = QLabel(EMPTY_HINT)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setEnabled(False)  # drawn greyed, as a placeholder
        self.setCentralWidget(hint)
        self._enable_project_actions(False)
        for key in ("tool_ai", "tool_polygon", "tool_brush", "tool_eraser"):
            self.actions[key].setChecked(False)

    def _enable_project_actions(self, enabled: bool) -> None:
        for key in PROJECT_ACTIONS:
            self.actions[key].setEnabled(enabled)

    def _confirm_unsaved(self) -> bool:
        """The unsaved-changes guard: True when it is fine to close the project.

        With autosave on, the changes are saved; with autosave off (or a failed save) the user chooses
        Save, Discard or Cancel."""
        ws = self.workspace
        if ws is not None:
            ws.autosave.wait()  # a save that is running may leave nothing unsaved
        if ws is None or not ws.project.document.dirty or ws.project.read_only:
            return True  # read-only: nothing can be saved (its changes are the scan's new images)
        if ws.autosave.delay_seconds and ws.autosave.save_now():
            return True  # autosave is on: closing saves, as a pause in editing would have
        answer = QMessageBox.question(
            self,
            "Unsaved changes",
            f"Save the changes to {ws.project.path.name} before closing?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Save:
            return ws.autosave.save_now()
        return answer == QMessageBox.StandardButton.Discard

    def save(self) -> bool:
        """Ctrl+S: save in the background; "Saved" is shown once the file is written."""
        ws = self.workspace
        if ws is None or ws.project.read_only:
            return False
        return ws.autosave.save_in_background(lambda path=ws.project.path: self.show_message(f"Saved {path}"))

    # ----- tools and edits -----
    def set_tool(self, name: str) -> None:
        ws = self.workspace
        if ws is None:
            return
        if self.tool is not None:
            self.tool.deactivate()
        self.tool = ws.tools[name]
        self.tool.activate()
        self.actions[f"tool_{name}"].setChecked(True)

    def accept(self) -> None:
        """Accept the tool's mask or polygon; with no category yet, ask for one's name first (the
        prompts or vertices are kept when the user cancels)."""
        ws, tool = self.workspace, self.tool
        if ws is None or tool is None:
            return
        if ws.session.current_category is None and tool.has_pending() and not ws.session.read_only:
            if not ws.categories.ask_add("Name of the category of this object:"):
                return
        tool.accept()

    def step_image(self, delta: int) -> None:
        """Next (1) or previous (-1) image among those the Files panel shows (its filters apply)."""
        ws = self.workspace
        if ws is not None and not ws.session.step_image(delta, ws.files.proxy.accepts_image):
            self.show_message(f"No {'next' if delta > 0 else 'previous'} image in the file list.")

    def _resize_brush(self, factor: float) -> None:
        self.brush_size.setValue(max(1, round(self.brush_size.value() * factor)))

    def _set_brush_size(self, size: int) -> None:
        self.settings.brush_size = size
        if self.workspace is not None:
            self.workspace.brush.set_size(size)
            self.workspace.eraser.set_size(size)

    def mark_image(self, status: ImageStatus) -> None:
        ws = self.workspace
        if ws is not None and ws.session.current_image_id is not None:
            ws.session.push(SetImageStatus(ws.session.document, ws.session.current_image_id, status))

    def _session_call(self, name: str, *args: object) -> None:
        if self.workspace is not None:
            getattr(self.workspace.session, name)(*args)

    # ----- dialogs -----
    def _ask_open(self) -> None:
        path = ask_open_path(self)
        if path:
            self.open_path(path)

    def show_export(self) -> None:
        """The export dialog; not modal, so browsing goes on while it exports in the background."""
        if self.workspace is None:
            return
        if self.export_dialog is None:
            dialog = ExportDialog(self.workspace.project, self.settings, self)
            dialog.finished.connect(lambda _result: self._export_closed(dialog))
            self.export_dialog = dialog
        self.export_dialog.show()
        self.export_dialog.raise_()

    def _export_closed(self, dialog: ExportDialog) -> None:
        if self.export_dialog is dialog:
            self.export_dialog = None
        dialog.deleteLater()

    def show_batch(self) -> None:
        """Label many images at once with the batch pipeline (its own predictor, in a worker thread)."""
        ws = self.workspace
        if ws is None:
            return
        if self.batch_dialog is not None:
            self.batch_dialog.raise_()
            return
        from efficientsam_studio.gui.batch_dialog import BatchDialog

        config, loader = self.model.config(), self.engine.loader
        dialog = BatchDialog(ws.session, ws.project, lambda: loader(config), ws.autosave.save_now, self)
        dialog.finished.connect(lambda _result: self._batch_closed(dialog))
        self.batch_dialog = dialog
        dialog.open()

    def _batch_closed(self, dialog: BatchDialog) -> None:
        if self.batch_dialog is dialog:
            self.batch_dialog = None
        dialog.deleteLater()
        if self._close_after_batch:
            self._close_after_batch = False
            QTimer.singleShot(0, self.close)

    def show_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings(dialog.values())

    def apply_settings(self, new: StudioSettings) -> None:
        """Use and persist ``new``; the model reloads when model, file, backend, device or cache changed."""
        old = self.settings
        reload = any(
            getattr(old, k) != getattr(new, k)
            for k in ("model", "checkpoint", "backend", "device", "cache_mb")
        )
        for field, value in vars(new).items():
            setattr(old, field, value)
        save_settings(old)
        ws = self.workspace
        if ws is not None:
            if not ws.project.read_only:
                ws.autosave.set_delay(old.autosave_seconds)
            ws.polygon.polygon_mode, ws.polygon.tolerance = old.polygon_mode, old.polygon_tolerance
            ws.images.ahead = old.precompute_ahead
            ws.ai.hover.enabled = old.hover_preview
            ws.ai.refine_boxes = old.refine_boxes
            if not old.hover_preview:
                ws.ai.hover.clear()
        if reload:
            self.model.load()

    # ----- status and closing -----
    def show_message(self, text: str) -> None:
        self.status.showMessage(text)

    def _update_title(self) -> None:
        ws = self.workspace
        if ws is None:
            self.setWindowTitle("EfficientSAM Studio")
            return
        mark = " [read-only]" if ws.project.read_only else " *" if ws.project.document.dirty else ""
        self.setWindowTitle(f"{ws.project.path.name}{mark} - EfficientSAM Studio")

    def request_quit(self) -> None:
        """Close for a termination request (Ctrl+C, SIGTERM): like :meth:`close`, but a running batch
        is stopped without a question."""
        self._quit_requested = True
        try:
            self.close()
        finally:
            self._quit_requested = False

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        """Close the project (through the unsaved-changes guard) and the engine. A running batch is
        stopped first, once the user agrees: the window closes when the run has stopped and saved its
        finished images."""
        save_window_state(self)  # while the project's docks are there
        if self._batch_running():
            event.ignore()
            if not self._close_after_batch and (self._quit_requested or self._agree_to_stop_batch()):
                if self._batch_running():  # it may have ended while the question was shown
                    self._close_after_batch = True
                    self.show_message("Stopping the batch run after the current image; closing then.")
                    self.batch_dialog.reject()  # cancels; the dialog closes when the worker has stopped
                else:
                    QTimer.singleShot(0, self.close)
            return
        if self._export_running():
            # the export stops only once the unsaved-changes question is answered too
            if not (self._quit_requested or self._agree_to_stop_export()) or not self._confirm_unsaved():
                event.ignore()
                return
            self.export_dialog.stop()  # waits for the image being written
            self._close_workspace(ask=False)
        elif not self._close_workspace():
            event.ignore()
            return
        save_settings(self.settings)
        self.engine.shutdown()
        event.accept()

    def _busy_message(self) -> str | None:
        """Why the open project cannot be closed now (a batch run or an export works on it), or None."""
        if self._batch_running():
            return "A batch run is labelling this project; cancel it first."
        if self._export_running():
            return "An export of this project is running; cancel it first."
        return None

    def _batch_running(self) -> bool:
        return self.batch_dialog is not None and self.batch_dialog.running

    def _agree_to_stop_batch(self) -> bool:
        return self._agree_to_stop(
            "Batch run in progress",
            "A batch run is labelling images. Stop it after the current image and close?\n\n"
            "The images it has finished are saved; run it again later to label the rest.",
        )

    def _export_running(self) -> bool:
        return self.export_dialog is not None and self.export_dialog.running

    def _agree_to_stop_export(self) -> bool:
        return self._agree_to_stop(
            "Export in progress",
            "An export is writing files. Stop it and close?\n\n"
            "A COCO file is then not written; a folder export is left incomplete.",
        )

    def _agree_to_stop(self, title: str, text: str) -> bool:
        """Ask whether to stop background work and close (No is the default)."""
        buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
        answer = QMessageBox.question(self, title, text, buttons, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def action(self, key: str) -> QAction:
        return self.actions[key]
