"""The reference for `rmtrain bench-data --pillow`: the same data-loading work done with Pillow + numpy,
one process (= one core, as one of our loader threads).

Per image, as torchvision's ImageNet training transform on PIL images: open; RandomResizedCrop
parameters (scale 0.08-1, ratio 3/4-4/3, 10 attempts, centre fallback); draft() so the JPEG decodes at
the smallest DCT scale that still covers the crop at the output size (what our loader does); convert to
RGB; crop + resize (bilinear, antialiased); horizontal flip with p = 0.5; to float32 in [0, 1];
normalise with the ImageNet mean/std; write into a preallocated NHWC batch. --aug-plus adds the
ColorJitter + Lighting of the RecursiveMix recipe in numpy.

Prints one JSON line: {"images_per_sec": ..., "images": ..., "seconds": ...}.
Usage: python3 launch/bench/pillow_loader.py --data ../shared/data/imagenette-mini --image-size 224
Needs: pip install pillow numpy
"""
import argparse, json, math, os, random, time
import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
EIGVAL = np.array([0.2175, 0.0188, 0.0045], dtype=np.float32)
EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]], dtype=np.float32)


def files(root):
    out = []
    train = os.path.join(root, "train")
    for cls in sorted(os.listdir(train)):
        for dirpath, _, names in sorted(os.walk(os.path.join(train, cls))):
            out += [os.path.join(dirpath, n) for n in sorted(names) if n.lower().endswith((".jpg", ".jpeg", ".png"))]
    return out


def rrc_params(w, h, rng):
    area = w * h
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ar = math.exp(rng.uniform(lo, hi))
        cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, h - ch), rng.randint(0, w - cw), ch, cw
    ratio = w / h
    cw, ch = w, h
    if ratio < 3 / 4:
        ch = int(round(w / (3 / 4)))
    elif ratio > 4 / 3:
        cw = int(round(h * (4 / 3)))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def load(path, size, rng, out, aug_plus):
    im = Image.open(path)
    w, h = im.size
    i, j, ch, cw = rrc_params(w, h, rng)
    s = max(size / cw, size / ch)
    if s < 1:
        im.draft("RGB", (math.ceil(w * s), math.ceil(h * s)))
    im = im.convert("RGB")
    fx, fy = im.size[0] / w, im.size[1] / h
    box = (j * fx, i * fy, (j + cw) * fx, (i + ch) * fy)
    im = im.resize((size, size), Image.BILINEAR, box=box)
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    x = np.asarray(im, dtype=np.float32) * (1 / 255)
    if aug_plus:
        order = [0, 1, 2]
        rng.shuffle(order)
        for t in order:
            a = rng.uniform(-0.4, 0.4)
            if t == 0:
                x = x * (1 - a)
            else:
                g = x @ np.array([0.2989, 0.587, 0.114], dtype=np.float32)
                target = g.mean() if t == 1 else g[..., None]
                x = x + a * (target - x)
        alpha = np.array([rng.gauss(0, 0.1) for _ in range(3)], dtype=np.float32)
        x = x + EIGVEC @ (alpha * EIGVAL)
    np.subtract(x, MEAN, out=out)
    np.divide(out, STD, out=out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--aug-plus", action="store_true")
    a = ap.parse_args()
    paths = files(a.data)
    rng = random.Random(1)
    batch = np.empty((a.batch_size, a.image_size, a.image_size, 3), dtype=np.float32)

    def run(seconds):
        n, start = 0, time.perf_counter()
        while True:
            order = list(range(len(paths)))
            rng.shuffle(order)
            for k in order:
                load(paths[k], a.image_size, rng, batch[n % a.batch_size], a.aug_plus)
                n += 1
                if n % a.batch_size == 0 and time.perf_counter() - start > seconds:
                    return n, time.perf_counter() - start

    run(a.seconds / 2)                       # warm-up: page cache
    n, dt = run(a.seconds)
    print(json.dumps({"images_per_sec": n / dt, "images": n, "seconds": dt}))


if __name__ == "__main__":
    main()
