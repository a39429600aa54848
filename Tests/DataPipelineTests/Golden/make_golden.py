"""Reference decodes and resizes for Tests/DataPipelineTests/ImageGoldenTests.swift, made with Pillow.

Run from the package root:  pip install pillow && python3 Tests/DataPipelineTests/Golden/make_golden.py
Reads two imagenette-mini JPEGs from ../shared/data (never copied here) and writes, next to this script:
  * manifest.json: one entry per check (source image, operation, expected size, expected-pixel file);
  * *.rgb.gz: Pillow's RGB bytes for each check (gzip'd, row-major, 3 bytes per pixel);
  * cmyk.jpg and png_*.png: small images in the formats to check (CMYK JPEG, PNG colour types),
    cut from an imagenette photo.
"Resize" checks are torchvision's resized_crop on PIL images: crop, then Image.resize(BILINEAR), and
Resize(short side) + CenterCrop for evaluation.
"""
import gzip, json, os
import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "data"))
RGB_SRC = "imagenette-mini/train/n01440764/n01440764_1009.JPEG"
GREY_SRC = "imagenette-mini/train/n03445777/n03445777_16143.JPEG"

entries = []

def emit(name, img, **fields):
    img = img.convert("RGB")
    with open(os.path.join(HERE, name + ".rgb.gz"), "wb") as f:
        f.write(gzip.compress(img.tobytes(), mtime=0))
    entries.append(dict(name=name, width=img.width, height=img.height, expected=name + ".rgb.gz", **fields))

for tag, src in (("rgb", RGB_SRC), ("grey", GREY_SRC)):
    im = Image.open(os.path.join(DATA, src))
    assert im.mode == ("RGB" if tag == "rgb" else "L"), im.mode
    emit(f"decode_{tag}", im, source=src, op="decode")
    # crop (left, top, right, bottom) then resize: one upsampling, one antialiased downsampling
    for box, size in (((30, 40, 80, 100), (96, 96)), ((10, 5, 210, 185), (64, 48))):
        out = im.convert("RGB").crop(box).resize(size, Image.BILINEAR)
        emit(f"crop_{tag}_{box[0]}_{box[1]}_{size[0]}", out, source=src, op="crop_resize", box=list(box))
    # evaluation: resize the whole image to 80×80, centre crop 70×70 (torchvision rounding)
    resized = im.convert("RGB").resize((80, 80), Image.BILINEAR)
    emit(f"eval_{tag}", resized.crop((5, 5, 75, 75)), source=src, op="resize_center", resize=[80, 80])

# Formats: a CMYK JPEG and PNGs of each colour type, from a 40×30 piece of the RGB photo.
piece = Image.open(os.path.join(DATA, RGB_SRC)).convert("RGB").crop((60, 70, 100, 100))
piece.convert("CMYK").save(os.path.join(HERE, "cmyk.jpg"), quality=92)
emit("cmyk", Image.open(os.path.join(HERE, "cmyk.jpg")), source="Golden/cmyk.jpg", op="decode")
for mode in ("RGB", "RGBA", "L", "LA", "P"):
    name = f"png_{mode.lower()}"
    img = piece.convert(mode) if mode != "P" else piece.quantize(colors=64)
    if mode in ("RGBA", "LA"):
        img.putalpha(Image.linear_gradient("L").resize(piece.size))
    img.save(os.path.join(HERE, name + ".png"), optimize=False)
    emit(name, Image.open(os.path.join(HERE, name + ".png")), source=f"Golden/{name}.png", op="decode")

# 16-bit grey PNG: Pillow's own RGB conversion clips 16-bit values, so the reference is the high byte
# (what our reader keeps), computed here.
grey16 = Image.fromarray((np.asarray(piece.convert("L"), dtype=np.uint16) * 257 + 3).astype(np.uint16))
grey16.save(os.path.join(HERE, "png_i16.png"))
hi = (np.asarray(Image.open(os.path.join(HERE, "png_i16.png")), dtype=np.uint32) >> 8).astype(np.uint8)
emit("png_i16", Image.fromarray(hi, "L"), source="Golden/png_i16.png", op="decode")

with open(os.path.join(HERE, "manifest.json"), "w") as f:
    json.dump(dict(pillow=PIL.__version__, checks=entries), f, indent=1)
print(f"wrote {len(entries)} checks to {HERE}")
