"""A complete JPEG with one damaged restart interval, and Pillow's decode of it, for BadImageTests and
ImageGoldenTests. Appends the check to manifest.json (make_golden.py's checks are left as they are).

Run from the package root:  pip install pillow numpy && python3 Tests/DataPipelineTests/Golden/make_damaged_jpeg.py
A 64×48 piece of an imagenette photo is saved with a restart marker after every MCU row (3 rows of 16 px at
4:2:0, so markers RST0 and RST1), then 150 bytes are cut out of the middle of the second interval's
entropy-coded data, as a bad copy can lose them. libjpeg (Pillow, djpeg, TurboJPEG) warns "Corrupt JPEG
data: premature end of data segment", fills the rest of that interval and resynchronises at RST1: rows
16-31 are damaged (and rows 15 and 32 through chroma upsampling), the rest decodes as in the undamaged file. The file still ends with EOI, so
Pillow decodes it without LOAD_TRUNCATED_IMAGES (a truncated file raises "image file is truncated").
"""
import gzip, io, json, os
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "data"))
SRC = "imagenette-mini/train/n01440764/n01440764_1009.JPEG"

piece = Image.open(os.path.join(DATA, SRC)).convert("RGB").crop((60, 70, 124, 118))
buf = io.BytesIO()
piece.save(buf, "JPEG", quality=90, restart_marker_rows=1)
good = buf.getvalue()
sos = good.rfind(b"\xff\xda")
rst = [i for i in range(sos, len(good) - 1) if good[i] == 0xFF and 0xD0 <= good[i + 1] <= 0xD7]
assert len(rst) == 2, rst
start, end = rst[0] + 2, rst[1]                       # the second restart interval's data
cut = start + (end - start) // 3
damaged = good[:cut] + good[cut + 150:]
assert cut + 150 < end and damaged.endswith(b"\xff\xd9")
with open(os.path.join(HERE, "damaged_restart.jpg"), "wb") as f:
    f.write(damaged)

img = Image.open(os.path.join(HERE, "damaged_restart.jpg"))
img.load()                                            # raises if Pillow took it for truncated
ref = np.asarray(img.convert("RGB"))
clean = np.asarray(Image.open(io.BytesIO(good)).convert("RGB"))
rows = np.nonzero((ref != clean).any(axis=(1, 2)))[0]
assert rows.min() >= 15 and rows.max() <= 32, rows   # the damaged interval (and one row each side: chroma upsampling)
with open(os.path.join(HERE, "damaged_restart.rgb.gz"), "wb") as f:
    f.write(gzip.compress(ref.tobytes(), mtime=0))

path = os.path.join(HERE, "manifest.json")
manifest = json.load(open(path))
manifest["checks"] = [c for c in manifest["checks"] if c["name"] != "damaged_restart"]
manifest["checks"].append(dict(name="damaged_restart", width=img.width, height=img.height,
                               expected="damaged_restart.rgb.gz", source="Golden/damaged_restart.jpg", op="decode"))
with open(path, "w") as f:
    json.dump(manifest, f, indent=1)
print(f"damaged_restart.jpg: {len(damaged)} bytes, rows {rows.min()}-{rows.max()} damaged")
