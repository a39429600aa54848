/// Separable resampling with Pillow's "bilinear" filter: a triangle whose support widens with the
/// downscaling factor (so shrinking is antialiased, as in PIL's `Image.resize` and torchvision on PIL
/// images), coefficients computed exactly as Pillow's `precompute_coeffs`. Work is in float, so the
/// result is Pillow's before its rounding to 8 bits.
///
/// One axis maps the source interval [in0, in1) (fractional after DCT-domain downscaling) onto
/// `outSize` output pixels; only source pixels in the clip range [lo, hi) contribute, which reproduces
/// "crop, then resize" (`resized_crop`). Only outputs `first ..< first + count` are computed (a centre
/// crop of a resize), optionally in reverse order (a horizontal flip folded into the table).
final class AxisTable {
    private let startBuf = Scratch<Int32>(), tapsBuf = Scratch<Int32>(), weightBuf = Scratch<Float>()
    private let kernel = Scratch<Double>()
    private(set) var count = 0, ksize = 0
    var start: UnsafeMutablePointer<Int32> { startBuf.pointer }
    var taps: UnsafeMutablePointer<Int32> { tapsBuf.pointer }
    var weights: UnsafeMutablePointer<Float> { weightBuf.pointer }

    func compute(lo: Int, hi: Int, in0: Double, in1: Double, outSize: Int, first: Int, count n: Int, reverse: Bool = false) {
        let inSize = hi - lo
        let scale = (in1 - in0) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filterScale                      // bilinear support is 1, widened when shrinking
        ksize = Int(support.rounded(.up)) * 2 + 1
        count = n
        let st = startBuf.reserve(n), tp = tapsBuf.reserve(n), wt = weightBuf.reserve(n * ksize)
        let base = in0 - Double(lo)
        let k = kernel.reserve(ksize)
        for j in 0..<n {
            let xx = first + j
            let center = base + (Double(xx) + 0.5) * scale
            var xmin = Int(center - support + 0.5); if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5); if xmax > inSize { xmax = inSize }
            xmax -= xmin
            var ww = 0.0
            for x in 0..<max(xmax, 0) {
                let t = abs((Double(x + xmin) - center + 0.5) / filterScale)
                k[x] = t < 1 ? 1 - t : 0
                ww += k[x]
            }
            // Zero-weight taps at either end change nothing: drop them (an unscaled axis becomes one tap).
            var s = 0, e = max(xmax, 0)
            while s < e && k[s] == 0 { s += 1 }
            while e > s && k[e - 1] == 0 { e -= 1 }
            if s == e { s = 0; e = min(1, max(xmax, 0)); if e == 1 { k[0] = 1; ww = 1 } }
            let slot = reverse ? n - 1 - j : j
            st[slot] = Int32(lo + xmin + s)
            tp[slot] = Int32(e - s)
            let dst = wt + slot * ksize
            for x in s..<e { dst[x - s] = Float(ww != 0 ? k[x] / ww : 0) }
        }
    }
}

enum Resampler {
    /// Resamples packed 3-channel `src` (row stride `srcStride` bytes) through the two tables into
    /// `dst` (rows of `x.count·3` floats, stride `dstStride` floats), computing `v·gain[c] + bias[c]` per
    /// channel (normalisation fused in; exact because each table's weights sum to 1). `tmp` holds the
    /// horizontally resampled rows.
    static func run(src: UnsafePointer<UInt8>, srcStride: Int, x: AxisTable, y: AxisTable,
                    dst: UnsafeMutablePointer<Float>, dstStride: Int,
                    gain: SIMD3<Float>, bias: SIMD3<Float>, tmp: Scratch<Float>) {
        guard x.count > 0, y.count > 0 else { return }
        var rowLo = Int.max, rowHi = 0
        for j in 0..<y.count {
            rowLo = min(rowLo, Int(y.start[j]))
            rowHi = max(rowHi, Int(y.start[j] + y.taps[j]))
        }
        let rowLen = x.count * 3
        let t = tmp.reserve(max(rowHi - rowLo, 1) * rowLen)
        let xs = x.start, xt = x.taps, xw = x.weights, xk = x.ksize
        // Horizontal pass over the source rows the vertical pass needs.
        for r in rowLo..<rowHi {
            let row = src + r * srcStride
            let out = t + (r - rowLo) * rowLen
            for j in 0..<x.count {
                var p = row + 3 * Int(xs[j])
                let w = xw + j * xk
                var acc = SIMD3<Float>(0, 0, 0)
                for k in 0..<Int(xt[j]) {
                    acc += w[k] * SIMD3<Float>(Float(p[0]), Float(p[1]), Float(p[2]))
                    p += 3
                }
                acc = acc * gain + bias
                out[3 * j] = acc.x; out[3 * j + 1] = acc.y; out[3 * j + 2] = acc.z
            }
        }
        // Vertical pass: each output row is a weighted sum of whole temporary rows (vectorises).
        for j in 0..<y.count {
            let d = dst + j * dstStride
            let w = y.weights + j * y.ksize
            let s0 = t + (Int(y.start[j]) - rowLo) * rowLen
            let w0 = w[0]
            for i in 0..<rowLen { d[i] = w0 * s0[i] }
            for k in 1..<max(Int(y.taps[j]), 1) {
                let sk = s0 + k * rowLen, wk = w[k]
                for i in 0..<rowLen { d[i] += wk * sk[i] }
            }
        }
    }
}
