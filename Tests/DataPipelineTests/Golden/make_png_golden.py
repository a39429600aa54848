"""PNGs that other tools read and that a hand-written decoder tends to refuse: Adam7-interlaced images and
1-, 2- and 4-bit grey and palette images, written with pypng from a 40×30 piece of an imagenette photo,
with Pillow's RGB decode of each as the reference. Appends them to manifest.json (make_golden.py's other
checks are left as they are).

Run from the package root:  pip install pillow pypng && python3 Tests/DataPipelineTests/Golden/make_png_golden.py
"""
import gzip, json, os
import numpy as np
import png                     # pypng: writes interlaced and low-bit-depth files, which Pillow does not
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "data"))
piece = Image.open(os.path.join(DATA, "imagenette-mini/train/n01440764/n01440764_1009.JPEG")).convert("RGB").crop((60, 70, 100, 100))
rgb = np.asarray(piece)
grey = np.asarray(piece.convert("L"))
h, w = grey.shape

manifest = json.load(open(os.path.join(HERE, "manifest.json")))
manifest["checks"] = [c for c in manifest["checks"] if not c["name"].startswith(("png_adam7", "png_l1", "png_l2", "png_l4", "png_p1", "png_p2", "png_p4"))]


def add(name, write):
    path = os.path.join(HERE, name + ".png")
    with open(path, "wb") as f:
        write(f)
    ref = Image.open(path).convert("RGB")
    with open(os.path.join(HERE, name + ".rgb.gz"), "wb") as f:
        f.write(gzip.compress(ref.tobytes(), mtime=0))
    manifest["checks"].append(dict(name=name, width=ref.width, height=ref.height, expected=name + ".rgb.gz",
                                   source=f"Golden/{name}.png", op="decode"))


add("png_adam7_rgb", lambda f: png.Writer(w, h, greyscale=False, interlace=True).write(f, rgb.reshape(h, w * 3).tolist()))
add("png_adam7_l", lambda f: png.Writer(w, h, greyscale=True, interlace=True).write(f, grey.tolist()))
for bits in (1, 2, 4):
    levels = (1 << bits) - 1
    q = (grey.astype(np.int32) * levels + 127) // 255
    add(f"png_l{bits}", lambda f, q=q, bits=bits: png.Writer(w, h, greyscale=True, bitdepth=bits,
                                                              interlace=bits == 2).write(f, q.tolist()))
    pal_img = piece.quantize(colors=1 << bits)
    palette = np.asarray(pal_img.getpalette()[:3 * (1 << bits)]).reshape(-1, 3).tolist()
    idx = np.asarray(pal_img)
    add(f"png_p{bits}", lambda f, idx=idx, palette=palette, bits=bits: png.Writer(
        w, h, palette=[tuple(p) for p in palette], bitdepth=bits, interlace=bits == 4).write(f, idx.tolist()))

json.dump(manifest, open(os.path.join(HERE, "manifest.json"), "w"), indent=1)
print("wrote", [c["name"] for c in manifest["checks"] if c["name"].startswith(("png_adam7", "png_l", "png_p"))])
