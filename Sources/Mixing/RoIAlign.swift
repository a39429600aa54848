import Kernels

/// torchvision `roi_align(feat, rois, output_size=(1,1), spatial_scale, sampling_ratio=-1, aligned=True)`
/// for one box shared by every sample of the batch (§2.1), on an NHWC feature map. Output [N, C].
///
/// Geometry, in float32 as torchvision's kernel (`T = float`):
///     start = x1·s − 0.5, end = x2·s − 0.5, roi = end − start  (no min-1 clamp when aligned)
///     grid gh×gw = ceil(roi_h)×ceil(roi_w) (adaptive, sampling_ratio −1), count = max(gh·gw, 1)
///     sample (iy, ix) at y = start_h + (iy+0.5)·roi_h/gh, x = start_w + (ix+0.5)·roi_w/gw
/// and each sample is torchvision's `bilinear_interpolate`: 0 when y < −1, y > H, x < −1 or x > W; clamp
/// y ≤ 0 → 0 (same for x); y_low = Int(y); if y_low ≥ H−1 then y_low = y_high = H−1 and y = y_low; the
/// four standard taps. out = Σ samples / count.
///
/// Because the box is the same for all samples, the op is a fixed linear map: out[n, :] = Σ_p w[p]·f[n, p, :]
/// with w[p] = (sum of the tap weights that land on pixel p) / count. That weight map is built once per
/// forward, then each sample is a weighted sum of a few contiguous C-vectors (NHWC) and the backward is
/// dF[n, p, :] = w[p]·dy[n, :] (torchvision's backward scatters grad·w_k/count to the same taps and skips
/// only out-of-range samples, which is the same map). Summation order differs from torchvision's
/// per-sample order only by float rounding.
///
/// Legacy transposed RoI (§1.8): the pre-fix release pasted into `box.transposed` but still gave this op
/// the untransposed box; a caller reproducing it pastes into `box.transposed` and passes the sampled
/// box here unchanged (or, equivalently, passes `pasteBox.transposed`). Nothing here changes.
public final class RoIAlign1x1 {
    private var output: Tensor?
    private var inputGrad: Tensor?
    private var weightMap: [Float] = []
    private var active: [Int] = []          // pixels with a nonzero weight, ascending
    private var inputShape: [Int] = []

    public init() {}

    /// The sampling grid (gh, gw) and the per-pixel weights (already divided by count) for `box` on an
    /// H×W map: exposed for tests and for drawing what the consistency head sees.
    public static func weights(height: Int, width: Int, box: Box, spatialScale: Double,
                               into map: inout [Float]) -> (gridH: Int, gridW: Int) {
        map.removeAll(keepingCapacity: true)
        map.append(contentsOf: repeatElement(0, count: height * width))
        // torchvision: `T roi_start_w = offset_rois[1] * spatial_scale - offset`, stored in T = float. Whether
        // the scale is float or double differs across versions; the paper's 1/8, 1/4, 1/32 are exact either way.
        let s = Float(spatialScale)
        let startW = Float(box.x1) * s - 0.5, startH = Float(box.y1) * s - 0.5
        let endW = Float(box.x2) * s - 0.5, endH = Float(box.y2) * s - 0.5
        let roiW = endW - startW, roiH = endH - startH
        let binH = roiH / 1, binW = roiW / 1                 // pooled size 1×1
        let gh = Int(roiH.rounded(.up)), gw = Int(roiW.rounded(.up))
        let count = Float(max(gh * gw, 1))
        guard gh > 0 && gw > 0 else { return (max(gh, 0), max(gw, 0)) }
        let hF = Float(height), wF = Float(width)
        for iy in 0..<gh {
            let yy = startH + (Float(iy) + 0.5) * binH / Float(gh)
            for ix in 0..<gw {
                let xx = startW + (Float(ix) + 0.5) * binW / Float(gw)
                if yy < -1 || yy > hF || xx < -1 || xx > wF { continue }
                var y = yy <= 0 ? 0 : yy, x = xx <= 0 ? 0 : xx
                var yLow = Int(y), xLow = Int(x)
                let yHigh: Int, xHigh: Int
                if yLow >= height - 1 { yLow = height - 1; yHigh = yLow; y = Float(yLow) } else { yHigh = yLow + 1 }
                if xLow >= width - 1 { xLow = width - 1; xHigh = xLow; x = Float(xLow) } else { xHigh = xLow + 1 }
                let ly = y - Float(yLow), lx = x - Float(xLow)
                let hy = 1 - ly, hx = 1 - lx
                map[yLow * width + xLow] += hy * hx / count
                map[yLow * width + xHigh] += hy * lx / count
                map[yHigh * width + xLow] += ly * hx / count
                map[yHigh * width + xHigh] += ly * lx / count
            }
        }
        return (gh, gw)
    }

    /// features [N, H, W, C] → [N, C]; `spatialScale` = feature width / image width (0.125 for a CIFAR
    /// ResNet's 4×4 map, 1/32 for ImageNet ResNet-50). The result tensor is owned and reused.
    public func forward(features f: Tensor, box: Box, spatialScale: Double) -> Tensor {
        precondition(f.shape.count == 4, "RoIAlign expects an NHWC feature map, got \(f.shape)")
        let n = f.n, h = f.h, w = f.w, c = f.c
        inputShape = f.shape
        _ = RoIAlign1x1.weights(height: h, width: w, box: box, spatialScale: spatialScale, into: &weightMap)
        active.removeAll(keepingCapacity: true)
        for p in 0..<(h * w) where weightMap[p] != 0 { active.append(p) }
        let y = ensure(&output, [n, c])
        let fp = f.data, yp = y.data
        weightMap.withUnsafeBufferPointer { wm in
            active.withUnsafeBufferPointer { act in
                Parallel.forEach(n) { i in
                    let o = yp + i * c
                    o.update(repeating: 0, count: c)
                    let base = fp + i * h * w * c
                    for p in act { axpy(wm[p], base + p * c, o, c) }
                }
            }
        }
        return y
    }

    /// dy [N, C] → dF [N, H, W, C], overwritten (zero outside the pixels the box's samples touch).
    public func backward(_ dy: Tensor) -> Tensor {
        let dx = ensure(&inputGrad, inputShape)
        let n = inputShape[0], hw = inputShape[1] * inputShape[2], c = inputShape[3]
        precondition(dy.count == n * c, "RoIAlign backward: dy \(dy.shape) is not [\(n), \(c)]")
        let dxp = dx.data, dyp = dy.data
        weightMap.withUnsafeBufferPointer { wm in
            Parallel.forEach(n) { i in
                let g = dyp + i * c
                for p in 0..<hw {
                    let d = dxp + (i * hw + p) * c
                    let wp = wm[p]
                    if wp == 0 { d.update(repeating: 0, count: c) } else { scale(wp, g, d, c) }
                }
            }
        }
        return dx
    }
}

/// y += a·x over c floats, eight at a time.
@inline(__always)
func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ c: Int) {
    var j = 0
    let av = Float8(repeating: a)
    while j + 8 <= c { store8(load8(y + j) + av * load8(x + j), y + j); j += 8 }
    while j < c { y[j] += a * x[j]; j += 1 }
}

@inline(__always)
func axpy(_ a: Float, _ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ c: Int) {
    axpy(a, UnsafePointer(x), y, c)
}

/// y = a·x over c floats.
@inline(__always)
func scale(_ a: Float, _ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ c: Int) {
    var j = 0
    let av = Float8(repeating: a)
    while j + 8 <= c { store8(av * load8(x + j), y + j); j += 8 }
    while j < c { y[j] = a * x[j]; j += 1 }
}
