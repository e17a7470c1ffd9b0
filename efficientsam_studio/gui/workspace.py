"""Everything that belongs to one open project: session, canvas, tools, panels and autosave."""

from __future__ import annotations

from efficientsam_studio.annotations.project import Project
from efficientsam_studio.gui.autosave import Autosaver
from efficientsam_studio.gui.canvas.instance_layer import InstanceLayer
from efficientsam_studio.gui.canvas.view import CanvasView
from efficientsam_studio.gui.image_controller import ImageController
from efficientsam_studio.gui.panels.categories import CategoriesPanel
from efficientsam_studio.gui.panels.files import FilesPanel
from efficientsam_studio.gui.panels.instances import InstancesPanel
from efficientsam_studio.gui.session import Session
from efficientsam_studio.gui.tools.ai_tool import AiTool
from efficientsam_studio.gui.tools.base import Tool
from efficientsam_studio.gui.tools.brush_tool import BrushTool
from efficientsam_studio.gui.tools.polygon_tool import PolygonTool


class Workspace:
    """Everything that belongs to one open project (rebuilt when another project is opened)."""

    def __init__(self, window, project: Project) -> None:
        self.project = project
        self.session = Session(project.document, project.folder, window)
        self.canvas = CanvasView(window)
        self.layer = InstanceLayer(self.canvas, self.session)
        self.images = ImageController(
            self.canvas, self.session, window.engine, self.layer, window.settings.precompute_ahead
        )
        self.ai = AiTool(self.canvas, self.session, window.engine)
        self.ai.hover.enabled = window.settings.hover_preview
        self.ai.refine_boxes = window.settings.refine_boxes
        self.polygon = PolygonTool(self.canvas, self.session)
        self.polygon.polygon_mode = window.settings.polygon_mode
        self.polygon.tolerance = window.settings.polygon_tolerance
        self.brush = BrushTool(self.canvas, self.session)
        self.eraser = BrushTool(self.canvas, self.session, erase=True)
        for tool in (self.brush, self.eraser):
            tool.set_size(window.settings.brush_size)
        self.tools: dict[str, Tool] = {t.name: t for t in (self.ai, self.polygon, self.brush, self.eraser)}
        self.files = FilesPanel(self.session)
        self.images.load_result.connect(self.files.model.set_unreadable)
        self.categories = CategoriesPanel(self.session)
        self.instances = InstancesPanel(self.session)
        self.autosave = Autosaver(project, window.settings.autosave_seconds, window)
