import Foundation
import Kernels

/// A rectangle of pixels with corners (x1, y1) inclusive and (x2, y2) exclusive, as in the reference code's
/// `x[:, :, bby1:bby2, bbx1:bbx2]` slices and as torchvision's RoIAlign reads `(x1, y1, x2, y2)` rows.
/// x runs along the width (columns), y along the height (rows).
public struct Box: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var x1: Int, y1: Int, x2: Int, y2: Int

    public init(x1: Int, y1: Int, x2: Int, y2: Int) {
        self.x1 = x1; self.y1 = y1; self.x2 = x2; self.y2 = y2
    }

    public var width: Int { x2 - x1 }
    public var height: Int { y2 - y1 }
    public var area: Int { width * height }

    /// The reference code's `size != (0, 0)` test, read literally: a box is empty only when BOTH sides are 0
    /// (`utils.py:377-379`). For the square images of the paper both sides are always zero together (after
    /// clipping a side is 0 only when its half-extent is 0), so this never differs from `area == 0` there;
    /// for a non-square image a box with one zero side would not be "empty" here, yet `area` is 0, λ is 1,
    /// and a paste writes nothing (PyTorch would raise on the zero-size interpolate instead).
    public var isEmpty: Bool { height == 0 && width == 0 }

    /// The mirror image about the main diagonal, (x, y) → (y, x). The release before `ed381bf` pasted into
    /// rows [x1, x2) and columns [y1, y2), i.e. into `transposed`, while its RoI stayed this box (§1.8).
    public var transposed: Box { Box(x1: y1, y1: x1, x2: y2, y2: x2) }

    public var description: String { "(\(x1),\(y1),\(x2),\(y2))" }
}

/// The per-batch random draws of RecursiveMix, CutMix and Mixup. One call = one batch: every sample of a
/// batch shares the box and λ, as in the reference code (§1.2) and timm's default 'batch' mode (§10.4).
///
/// All draws come from the caller's `RandomStream`, in a fixed documented order, so a seed reproduces the
/// box stream. (Bit-exact replay of CPython/NumPy MT19937 streams is not a goal, §1.9: only the
/// distribution matters, and the tests check it against the §9 statistics.)
public enum BoxSampler {
    /// numpy `np.clip(v, lo, hi)` for integers.
    @inline(__always)
    static func clip(_ v: Int, _ lo: Int, _ hi: Int) -> Int { min(max(v, lo), hi) }

    /// RecursiveMix's `rand_bbox` + λ (`utils.py:356-385`, §1.2-1.4, §8).
    ///
    /// Draws, in this order: u ~ U[0, alpha) (ONE draw: the nominal historical-area fraction),
    /// cx ~ {0..W-1}, cy ~ {0..H-1}. Side = `Int(W·√u)` (truncation, like `np.int`), half-extent = side / 2
    /// (integer division, so the unclipped side is even), corners clipped to [0, W] / [0, H] with no margin.
    /// `lam = 1 − area/(W·H)` is the weight of the CURRENT image, from the clipped area: a zero-area box
    /// gives exactly 1.0. The historical fraction (the paper's λ) is `1 − lam`.
    public static func recursiveMix(width: Int, height: Int, alpha: Double,
                                    rng: inout RandomStream) -> (box: Box, lam: Double) {
        precondition(width > 0 && height > 0 && alpha >= 0)
        let u = rng.uniform(0, alpha)
        let ratio = u.squareRoot()
        let cutW = Int(Double(width) * ratio), cutH = Int(Double(height) * ratio)
        let cx = rng.int(below: width)
        let cy = rng.int(below: height)
        let box = Box(x1: clip(cx - cutW / 2, 0, width), y1: clip(cy - cutH / 2, 0, height),
                      x2: clip(cx + cutW / 2, 0, width), y2: clip(cy + cutH / 2, 0, height))
        return (box, areaLam(box, width: width, height: height))
    }

    /// `1 − area/(W·H)`, computed as the code does (integer area, one floating division).
    @inline(__always)
    public static func areaLam(_ box: Box, width: Int, height: Int) -> Double {
        1 - Double(box.area) / Double(width * height)
    }

    /// timm's `rand_bbox` + `cutmix_bbox_and_lam` without min/max (§10.2): side ratio √(1−lam),
    /// `cut = Int(side·ratio)`, integer centre (draw order cy then cx, as timm), half-extent cut/2, clip.
    /// With `correctLam` (timm's default) the returned λ is `1 − clipped area/(H·W)`; otherwise `lam` as given.
    public static func cutMix(width: Int, height: Int, lam: Double, correctLam: Bool = true,
                              rng: inout RandomStream) -> (box: Box, lam: Double) {
        precondition(width > 0 && height > 0)
        let ratio = max(0, 1 - lam).squareRoot()
        let cutH = Int(Double(height) * ratio), cutW = Int(Double(width) * ratio)
        let cy = rng.int(below: height)
        let cx = rng.int(below: width)
        let box = Box(x1: clip(cx - cutW / 2, 0, width), y1: clip(cy - cutH / 2, 0, height),
                      x2: clip(cx + cutW / 2, 0, width), y2: clip(cy + cutH / 2, 0, height))
        return (box, correctLam ? areaLam(box, width: width, height: height) : lam)
    }

    /// timm's `rand_bbox_minmax` (§10.2): `cut_h ~ randint(int(H·min), int(H·max))`, then `cut_w` likewise
    /// (numpy's exclusive upper end), then the top-left corner `yl` uniform in 0...H − cut_h and `xl` in
    /// 0...W − cut_w — inclusive, unlike timm's `randint(0, H − cut_h)`, which never lets the box reach the
    /// last row or column — so the box always lies inside the image and may sit anywhere in it. λ is always
    /// corrected (timm forces it). The ranges must be non-empty, int(H·min) < int(H·max) and cut < H:
    /// `rmtrain train` checks that against the image size before it starts.
    public static func cutMixMinMax(width: Int, height: Int, minRatio: Double, maxRatio: Double,
                                    rng: inout RandomStream) -> (box: Box, lam: Double) {
        let hs = minMaxSides(height, minRatio: minRatio, maxRatio: maxRatio)
        let ws = minMaxSides(width, minRatio: minRatio, maxRatio: maxRatio)
        precondition(!hs.isEmpty && !ws.isEmpty, "cutmix min/max (\(minRatio), \(maxRatio)) gives an empty side range")
        let cutH = hs.lowerBound + rng.int(below: hs.count)
        let cutW = ws.lowerBound + rng.int(below: ws.count)
        precondition(cutH < height && cutW < width, "cutmix max ratio must be below 1")
        // timm draws the corner with numpy's exclusive upper end, randint(0, H − cut_h), so a box never
        // reaches the last row or column; every position of the box inside the image is drawn here.
        let yl = rng.int(below: height - cutH + 1)
        let xl = rng.int(below: width - cutW + 1)
        let box = Box(x1: xl, y1: yl, x2: xl + cutW, y2: yl + cutH)
        return (box, areaLam(box, width: width, height: height))
    }

    /// The box sides `cutMixMinMax` draws for an image side of `n` pixels: int(n·min) ..< int(n·max), as
    /// numpy's `randint`. Empty when the ratios are too close for the size (the trainer refuses that).
    public static func minMaxSides(_ n: Int, minRatio: Double, maxRatio: Double) -> Range<Int> {
        let lo = Int(Double(n) * minRatio), hi = Int(Double(n) * maxRatio)
        return lo..<max(lo, hi)
    }

    /// λ ~ Beta(α, α) as X/(X+Y) with X, Y ~ Gamma(α) (numpy's `beta` uses the same construction for
    /// α > 1; for small α it switches to Jöhnk's method, which gives the same distribution). Deterministic
    /// given `rng`. If both gammas underflow to 0 (possible only for tiny α), returns 0 or 1 with equal odds,
    /// the limit of Beta(α, α) as α → 0.
    public static func betaSample(alpha: Double, rng: inout RandomStream) -> Double {
        precondition(alpha > 0)
        let x = gammaSample(shape: alpha, rng: &rng)
        let y = gammaSample(shape: alpha, rng: &rng)
        let s = x + y
        if s == 0 { return rng.uniform() < 0.5 ? 0 : 1 }
        return x / s
    }

    /// Gamma(shape, 1) by Marsaglia & Tsang (2000). For shape < 1 it boosts: Gamma(a) = Gamma(a+1)·U^(1/a).
    /// Normals come from `RandomStream.normal()` (Box–Muller), uniforms from `uniform()`.
    public static func gammaSample(shape a: Double, rng: inout RandomStream) -> Double {
        precondition(a > 0)
        if a < 1 {
            let g = gammaSample(shape: a + 1, rng: &rng)
            var u = rng.uniform()
            while u == 0 { u = rng.uniform() }
            return g * Foundation.pow(u, 1 / a)
        }
        let d = a - 1.0 / 3.0, c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat {
                x = rng.normal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = rng.uniform()
            let x2 = x * x
            if u < 1 - 0.0331 * x2 * x2 { return d * v }
            if u > 0, Foundation.log(u) < 0.5 * x2 + d * (1 - v + Foundation.log(v)) { return d * v }
        }
    }
}
