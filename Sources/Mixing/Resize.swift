import Kernels

/// How the history image is resized into the box: the reference default `'nearest'` (PyTorch's legacy
/// nearest, `align_corners=None`) or the optional `'bilinear'` with `align_corners=True` (§1.5).
public enum InterpolationMode: String, Sendable, CaseIterable {
    case nearest, bilinear
}

/// ATen's legacy ("OpenCV-compatible") nearest source index for every output index:
/// `src = min(floor(dst · scale), in − 1)` with `scale = Float(in)/Float(out)` and the product taken in
/// float32, exactly as `nearest_neighbor_compute_source_index` (no half-pixel offset; this is not
/// `nearest-exact`). ATen's `nearest_idx` shortcuts `out == in` (copy) and `out == 2·in` (`dst >> 1`) give
/// the same numbers and are kept for fidelity. Example: 32 → 11 reads rows [0,2,5,8,11,14,17,20,23,26,29].
public func legacyNearestSourceIndices(input: Int, output: Int) -> [Int] {
    var out: [Int] = []
    legacyNearestSourceIndices(input: input, output: output, into: &out)
    return out
}

/// As above, into a caller-owned array (its capacity is reused: no allocation per step once grown).
public func legacyNearestSourceIndices(input: Int, output: Int, into out: inout [Int]) {
    precondition(input > 0 && output >= 0)
    out.removeAll(keepingCapacity: true)
    if output == input { out.append(contentsOf: 0..<output); return }
    if output == 2 * input { for d in 0..<output { out.append(d >> 1) }; return }
    let scale = Float(input) / Float(output)
    for d in 0..<output {
        out.append(min(Int((Float(d) * scale).rounded(.down)), input - 1))
    }
}

/// The two taps and weights of one output index for bilinear resizing with `align_corners=True`, as ATen's
/// CPU kernel computes them (`compute_source_index_and_lambda`, in float32): src = dst·(in−1)/(out−1)
/// (0 when out == 1), i0 = min(floor(src), in−1), i1 = i0 + (i0 < in−1 ? 1 : 0), λ1 = clamp(src − i0, 0, 1),
/// λ0 = 1 − λ1; `out == in` is a plain copy.
public struct LinearTap: Equatable, Sendable {
    public var i0: Int, i1: Int
    public var w0: Float, w1: Float
    public init(i0: Int, i1: Int, w0: Float, w1: Float) { self.i0 = i0; self.i1 = i1; self.w0 = w0; self.w1 = w1 }
}

public func bilinearAlignCornersTaps(input: Int, output: Int) -> [LinearTap] {
    var out: [LinearTap] = []
    bilinearAlignCornersTaps(input: input, output: output, into: &out)
    return out
}

public func bilinearAlignCornersTaps(input: Int, output: Int, into out: inout [LinearTap]) {
    precondition(input > 0 && output >= 0)
    out.removeAll(keepingCapacity: true)
    if output == input {
        for d in 0..<output { out.append(LinearTap(i0: d, i1: d, w0: 1, w1: 0)) }
        return
    }
    let scale: Float = output > 1 ? Float(input - 1) / Float(output - 1) : 0
    for d in 0..<output {
        let src = scale * Float(d)
        let i0 = min(Int(src.rounded(.down)), input - 1)
        let l1 = min(max(src - Float(i0), 0), 1)
        out.append(LinearTap(i0: i0, i1: i0 + (i0 < input - 1 ? 1 : 0), w0: 1 - l1, w1: l1))
    }
}

/// Pastes the WHOLE history image i, resized, into the box of image i of `x`, for i in 0..<x.n (the history
/// may hold more images: it is read as `history[:x.n]`, `utils.py:381`). Sample i receives history sample i
/// (index-aligned, no permutation). Everything outside the box is left untouched; the paste is in place.
///
/// Owns its index/weight arrays so that a training step does not allocate once they have grown.
public final class HistoryPaster {
    private var rowIndex: [Int] = [], colIndex: [Int] = []
    private var rowTaps: [LinearTap] = [], colTaps: [LinearTap] = []

    public init() {}

    /// The box must fit inside x. (The release before `ed381bf` pasted into `box.transposed`, §1.8:
    /// `--rm-legacy-transposed-roi` passes that box here, `RecursiveMixer.apply`.) Nothing is written when
    /// the target region has zero area (the code's `size == (0,0)` skip, and the only sane reading of a
    /// one-sided zero on a non-square image).
    public func paste(history: Tensor, into x: Tensor, box b: Box, mode: InterpolationMode) {
        precondition(history.shape.count == 4 && x.shape.count == 4, "paste expects NHWC tensors")
        precondition(history.n >= x.n, "history holds \(history.n) images, the batch \(x.n)")
        precondition(history.c == x.c, "history has \(history.c) channels, the batch \(x.c)")
        precondition(b.x1 >= 0 && b.y1 >= 0 && b.x2 <= x.w && b.y2 <= x.h && b.x1 <= b.x2 && b.y1 <= b.y2,
                     "box \(b) does not fit a \(x.h)×\(x.w) image")
        let outH = b.height, outW = b.width
        if outH == 0 || outW == 0 { return }
        let n = x.n, c = x.c, hh = history.h, hw = history.w, xh = x.h, xw = x.w
        let hp = history.data, xp = x.data
        switch mode {
        case .nearest:
            legacyNearestSourceIndices(input: hh, output: outH, into: &rowIndex)
            legacyNearestSourceIndices(input: hw, output: outW, into: &colIndex)
            rowIndex.withUnsafeBufferPointer { rows in
                colIndex.withUnsafeBufferPointer { cols in
                    Parallel.forEach(n) { i in
                        let src = hp + i * hh * hw * c, dst = xp + i * xh * xw * c
                        for r in 0..<outH {
                            let srow = src + rows[r] * hw * c
                            let drow = dst + ((b.y1 + r) * xw + b.x1) * c
                            if c <= 4 {     // RGB / grey images: a call per pixel would dominate
                                for q in 0..<outW {
                                    let d = drow + q * c, s = srow + cols[q] * c
                                    for ch in 0..<c { d[ch] = s[ch] }
                                }
                            } else {
                                for q in 0..<outW { (drow + q * c).update(from: srow + cols[q] * c, count: c) }
                            }
                        }
                    }
                }
            }
        case .bilinear:
            bilinearAlignCornersTaps(input: hh, output: outH, into: &rowTaps)
            bilinearAlignCornersTaps(input: hw, output: outW, into: &colTaps)
            rowTaps.withUnsafeBufferPointer { rows in
                colTaps.withUnsafeBufferPointer { cols in
                    Parallel.forEach(n) { i in
                        let src = hp + i * hh * hw * c, dst = xp + i * xh * xw * c
                        for r in 0..<outH {
                            let rt = rows[r]
                            let r0 = src + rt.i0 * hw * c, r1 = src + rt.i1 * hw * c
                            let drow = dst + ((b.y1 + r) * xw + b.x1) * c
                            for q in 0..<outW {
                                let ct = cols[q]
                                let a0 = ct.i0 * c, a1 = ct.i1 * c
                                let d = drow + q * c
                                for ch in 0..<c {
                                    // ATen's order: h0λ·(w0λ·x00 + w1λ·x01) + h1λ·(w0λ·x10 + w1λ·x11).
                                    let top = ct.w0 * r0[a0 + ch] + ct.w1 * r0[a1 + ch]
                                    let bottom = ct.w0 * r1[a0 + ch] + ct.w1 * r1[a1 + ch]
                                    d[ch] = rt.w0 * top + rt.w1 * bottom
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One-off convenience over `HistoryPaster` (allocates its index arrays; the trainer should keep a paster).
public func pasteResized(history: Tensor, into x: Tensor, box: Box, mode: InterpolationMode) {
    HistoryPaster().paste(history: history, into: x, box: box, mode: mode)
}
