import numpy as np
import torch
from PIL import Image

from mnist_ae.analysis.figures import contact_sheet, image_strip, sheet_box


def test_image_strip_lays_out_images_as_torchvision_make_grid_does():
    from torchvision.utils import make_grid  # 1.7 s to import: not in every worker's collection

    images = np.random.default_rng(0).random((10, 28, 28)).astype(np.float32)
    expected = make_grid(torch.from_numpy(images)[:, None], nrow=10, padding=2, pad_value=1.0)
    assert np.array_equal(image_strip(images), expected[0].numpy())


def test_a_contact_sheet_shows_each_picture_its_input_and_output_in_place(tmp_path):
    """Five triples, four to a line: two lines of twelve 84-pixel tiles; a 28 x 28 image is
    drawn three times larger, a 40 x 80 picture fits its tile on white, and a redraw is the
    same file."""
    rng = np.random.default_rng(0)
    digit = (rng.random((28, 28)) > 0.5).astype(np.float32)
    wide = np.zeros((40, 80), np.float32)  # a dark picture, twice as wide as it is high
    rows = [(f"picture-{i}.png", wide, digit, 1 - digit) for i in range(5)]
    contact_sheet(rows, tmp_path / "sheet.png")
    contact_sheet(rows, tmp_path / "again.png")
    assert (tmp_path / "sheet.png").read_bytes() == (tmp_path / "again.png").read_bytes()
    with Image.open(tmp_path / "sheet.png") as drawn:
        sheet = np.asarray(drawn.convert("L"), dtype=np.float32) / 255
    assert sheet.shape == (2 * (18 + 84 + 10) + 10, 12 * (84 + 10) + 10)
    # the second line's first triple (the fifth picture): tiles at x = 10, 104, 198
    top = 10 + (18 + 84 + 10) + 18
    picture, given, denoised = (sheet[top : top + 84, x : x + 84] for x in (10, 104, 198))
    expected = np.kron(digit, np.ones((3, 3)))
    assert np.abs(given - expected).max() < 0.01 and np.abs(denoised - (1 - expected)).max() < 0.01
    assert picture[21:63].max() < 0.01 and picture[:21].min() > 0.99  # 84 x 42, centred on white
    assert sheet[top : top + 84, 12 * 94 - 84 :].min() > 0.99  # no sixth picture: white


def test_a_contact_sheet_frames_in_red_only_the_pictures_judged_not_digits(tmp_path):
    digit = np.zeros((28, 28), np.float32)
    digit[8:20, 12:16] = 1
    rows = [(f"picture-{i}.png", digit, digit, digit) for i in range(6)]
    contact_sheet(rows, tmp_path / "sheet.png", not_digits=[False, True, False, False, True])
    with Image.open(tmp_path / "sheet.png") as drawn:
        rgb = np.asarray(drawn.convert("RGB")).astype(int)
    red = (rgb[..., 0] > 180) & (rgb[..., 1] < 100) & (rgb[..., 2] < 100)
    marked = np.zeros_like(red)
    for index in (1, 4):  # the second picture of the first line, the first of the second
        left, top, right, bottom = sheet_box(index)
        marked[top - 6 : bottom + 6, left - 6 : right + 6] = True
        assert red[top - 6 : bottom + 6, left - 6 : right + 6].sum() > 2 * (right - left)
    assert red.any() and not red[~marked].any()  # nothing red around the others
