"""Categories that a batch result creates: the app's palette in turn, kept through undo and redo."""

from __future__ import annotations

from efficientsam_studio.annotations import masks as mask_codec
from efficientsam_studio.annotations.commands import AddCategory
from efficientsam_studio.annotations.records import DEFAULT_COLOURS
from efficientsam_studio.batch.apply import ApplyResult
from efficientsam_studio.batch.results import ImageResult, NewMask
from tests.batch.conftest import box_mask


def _result(image_id: int, path: str, names: list[str]) -> ImageResult:
    result = ImageResult(image_id, path)
    for n, name in enumerate(names):
        rle = mask_codec.encode(box_mask((10 * n, 10, 10 * n + 8, 30)))
        result.masks.append(NewMask(name, rle, 0.9))
    return result


def test_categories_new_in_one_result_take_the_next_palette_colours(project):
    document = project.document
    AddCategory(document, "existing").do()
    image = document.images[0]
    command = ApplyResult(document, _result(image.id, image.path, ["cat", "dog", "cat", "bird"]))
    command.do()
    colours = {category.name: category.colour for category in document.categories}
    assert colours == {"existing": DEFAULT_COLOURS[0], "cat": DEFAULT_COLOURS[1], "dog": DEFAULT_COLOURS[2],
                       "bird": DEFAULT_COLOURS[3]}  # fmt: skip
    command.undo()
    assert [category.name for category in document.categories] == ["existing"]
    command.do()
    assert {category.name: category.colour for category in document.categories} == colours
