import Kernels

/// Max pooling over NHWC (the ImageNet stem's 3×3 / stride 2 / pad 1). Padding never wins the max,
/// as in PyTorch. Backward routes each output gradient to the input element that won.
public final class MaxPool2d: Layer {
    public let kernel: Int, stride: Int, padding: Int
    private var output: Tensor?
    private var argmax: [Int32] = []
    private var inputShape: [Int] = []
    private var inputGrad: Tensor?

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
        let dx = ensure(&inputGrad, inputShape)
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
    private var inputGrad: Tensor?
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
        let dx = ensure(&inputGrad, inputShape)
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
