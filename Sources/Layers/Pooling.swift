import Kernels

/// Max pooling over NHWC (the ImageNet stem's 3×3 / stride 2 / pad 1). Padding never wins the max,
/// as in PyTorch. Backward routes each output gradient to the input element that won.
public final class MaxPool2d: Layer {
    public let kernel: Int, stride: Int, padding: Int
    private var output: Tensor?
    private var argmax: [Int32] = []
    private var inputShape: [Int] = []

    public init(kernel: Int, stride: Int, padding: Int) {
        self.kernel = kernel; self.stride = stride; self.padding = padding
    }
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let n = x.n, h = x.h, w = x.w, c = x.c
        let oh = (h + 2 * padding - kernel) / stride + 1, ow = (w + 2 * padding - kernel) / stride + 1
        inputShape = x.shape
        let y = ensure(&output, [n, oh, ow, c])
        if argmax.count < y.count { argmax = [Int32](repeating: 0, count: y.count) }
        let xp = x.data, yp = y.data
        argmax.withUnsafeMutableBufferPointer { ab in
            let am = ab.baseAddress!
            Parallel.ranges(n * oh, minPerTask: 4) { rr in
                for r in rr {
                    let b = r / oh, oy = r % oh
                    for ox in 0..<ow {
                        let o = ((b * oh + oy) * ow + ox) * c
                        for ch in 0..<c { yp[o + ch] = -.infinity; am[o + ch] = -1 }
                        for ky in 0..<kernel {
                            let iy = oy * stride - padding + ky
                            if iy < 0 || iy >= h { continue }
                            for kx in 0..<kernel {
                                let ix = ox * stride - padding + kx
                                if ix < 0 || ix >= w { continue }
                                let i = ((b * h + iy) * w + ix) * c
                                for ch in 0..<c where xp[i + ch] > yp[o + ch] || am[o + ch] < 0 {
                                    yp[o + ch] = xp[i + ch]; am[o + ch] = Int32(i + ch)
                                }
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let dx = TensorPool.take(inputShape)
        dx.zero()
        // Sequential: windows overlap, and a fixed order keeps the sums reproducible.
        let dxp = dx.data, dyp = dy.data
        argmax.withUnsafeBufferPointer { am in
            for o in 0..<dy.count { dxp[Int(am[o])] += dyp[o] }
        }
        return dx
    }
}

/// Mean over H and W: [N, H, W, C] → [N, C].
public final class GlobalAvgPool: Layer {
    private var output: Tensor?
    private var inputShape: [Int] = []
    public init() {}
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let n = x.n, hw = x.h * x.w, c = x.c
        inputShape = x.shape
        let y = ensure(&output, [n, c])
        let xp = x.data, yp = y.data
        let inv = 1 / Float(hw)
        Parallel.forEach(n) { b in
            let o = yp + b * c
            o.update(repeating: 0, count: c)
            for p in 0..<hw { let row = xp + (b * hw + p) * c; for j in 0..<c { o[j] += row[j] } }
            for j in 0..<c { o[j] *= inv }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let dx = TensorPool.take(inputShape)
        let n = inputShape[0], hw = inputShape[1] * inputShape[2], c = inputShape[3]
        let inv = 1 / Float(hw)
        let dxp = dx.data, dyp = dy.data
        Parallel.forEach(n) { b in
            let g = dyp + b * c
            for p in 0..<hw { let row = dxp + (b * hw + p) * c; for j in 0..<c { row[j] = g[j] * inv } }
        }
        return dx
    }
}

/// Average pooling with a k×k window and stride k, no padding.
/// - `ceilMode: true`: PyramidNet's shortcut when a stage halves the map (the authors'
///   `nn.AvgPool2d((2, 2), stride=(2, 2), ceil_mode=True)`, models_cifar/pyramidnet.py). A window cut by the
///   border averages the pixels inside, as PyTorch does. [N, H, W, C] → [N, ⌈H/k⌉, ⌈W/k⌉, C].
/// - `ceilMode: false`: DenseNet's transition (`nn.AvgPool2d(2, stride=2)`, models_cifar/densenet.py): the
///   last row or column of an odd map is dropped and gets no gradient. [N, H, W, C] → [N, ⌊H/k⌋, ⌊W/k⌋, C].
public final class AvgPool2d: Layer {
    public let kernel: Int
    public let ceilMode: Bool
    private var output: Tensor?
    private var inputShape: [Int] = []
    public init(kernel: Int, ceilMode: Bool = true) { (self.kernel, self.ceilMode) = (kernel, ceilMode) }
    public var parameters: [Parameter] { [] }

    public func outputShape(_ s: [Int]) -> [Int] {
        let round = ceilMode ? kernel - 1 : 0
        return [s[0], (s[1] + round) / kernel, (s[2] + round) / kernel, s[3]]
    }

    /// The input rows and columns of output (oy, ox), and 1 / their count.
    @inline(__always)
    private func window(_ oy: Int, _ ox: Int, h: Int, w: Int) -> (Range<Int>, Range<Int>, Float) {
        let ys = (oy * kernel)..<min(h, oy * kernel + kernel), xs = (ox * kernel)..<min(w, ox * kernel + kernel)
        return (ys, xs, 1 / Float(ys.count * xs.count))
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        inputShape = x.shape
        let s = outputShape(x.shape), h = x.h, w = x.w, c = x.c, oh = s[1], ow = s[2]
        let y = ensure(&output, s)
        let xp = x.data, yp = y.data
        Parallel.ranges(x.n * oh, minPerTask: 4) { rr in
            for r in rr {
                let b = r / oh, oy = r % oh
                for ox in 0..<ow {
                    let o = yp + ((b * oh + oy) * ow + ox) * c
                    let (ys, xs, inv) = window(oy, ox, h: h, w: w)
                    o.update(repeating: 0, count: c)
                    for iy in ys { for ix in xs { let i = xp + ((b * h + iy) * w + ix) * c; for j in 0..<c { o[j] += i[j] } } }
                    for j in 0..<c { o[j] *= inv }
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let dx = TensorPool.take(inputShape)
        let h = inputShape[1], w = inputShape[2], c = inputShape[3], oh = dy.h, ow = dy.w
        let dxp = dx.data, dyp = dy.data
        // Floor mode leaves the pixels past the last whole window out of every window.
        if h % kernel != 0 || w % kernel != 0, !ceilMode { dx.zero() }
        // Windows do not overlap (stride = kernel): each input pixel gets one output's share.
        Parallel.ranges(inputShape[0] * oh, minPerTask: 4) { rr in
            for r in rr {
                let b = r / oh, oy = r % oh
                for ox in 0..<ow {
                    let g = dyp + ((b * oh + oy) * ow + ox) * c
                    let (ys, xs, inv) = window(oy, ox, h: h, w: w)
                    for iy in ys { for ix in xs { let d = dxp + ((b * h + iy) * w + ix) * c; for j in 0..<c { d[j] = g[j] * inv } } }
                }
            }
        }
        return dx
    }
}
