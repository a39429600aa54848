import Kernels

/// Batch normalisation over NHWC (statistics per channel over N·H·W), with the ReLU and the residual
/// add that follow it in a ResNet fused into the same pass: y = relu(γ·x̂ + β [+ residual]).
/// Fusing saves two full sweeps over the activation in forward and two in backward.
///
/// Training uses batch statistics and updates running mean and unbiased running variance with
/// `momentum` (PyTorch's convention: new = (1−m)·old + m·batch); eval uses the running statistics.
public final class BatchNorm2d: Layer {
    public let gamma: Parameter, beta: Parameter
    public let runningMean: Buffer, runningVar: Buffer
    public let channels: Int
    public let eps: Float = 1e-5
    public let momentum: Float
    public let relu: Bool

    private var input: Tensor?
    private var output: Tensor?
    /// dy after the ReLU mask, kept only when a residual was added (it is that branch's gradient): without
    /// one the mask is applied again in pass 2, which saves an activation-sized buffer per layer.
    private var maskedGrad: Tensor?
    private var mean: [Float]
    private var invStd: [Float]
    // Per-channel coefficients of the forward (scale, shift) and backward (k, a, b) passes, kept so that a
    // step allocates nothing.
    private var scale: [Float], shift: [Float], k: [Float], a: [Float], b: [Float]
    private var sums: [Double], squares: [Double], gradientSums: [Double]
    private var lastTraining = true
    private var lastResidual = false
    /// The ReLU's mask as bits (bit k of byte i: element 8i + k was > 0), written by the 8-wide forward so
    /// that both backward passes read 1 bit per element instead of y's 4 bytes (BN's passes are memory-
    /// bound); not kept for channels that are not a multiple of 8 (the backward then reads y).
    private var maskBits: UnsafeMutablePointer<UInt8>?
    private var maskCapacity = 0
    private var lastMaskBits = false

    deinit { maskBits?.deallocate() }

    public init(_ name: String, _ channels: Int, relu: Bool, momentum: Float = 0.1) {
        self.channels = channels
        self.relu = relu
        self.momentum = momentum
        gamma = Parameter(name + ".weight", shape: [channels], kind: .normScale)
        beta = Parameter(name + ".bias", shape: [channels], kind: .normShift)
        gamma.value.fill(1)
        runningMean = Buffer(name + ".running_mean", shape: [channels], fill: 0)
        runningVar = Buffer(name + ".running_var", shape: [channels], fill: 1)
        mean = Array(repeating: 0, count: channels)
        invStd = Array(repeating: 1, count: channels)
        (scale, shift, k, a, b) = (mean, mean, mean, mean, mean)
        sums = Array(repeating: 0, count: channels)
        squares = sums
        gradientSums = Array(repeating: 0, count: 2 * channels)
    }

    public var parameters: [Parameter] { [gamma, beta] }
    public var buffers: [Buffer] { [runningMean, runningVar] }

    /// γ = 1, β = 0, running mean 0 and variance 1 (torch/nn/modules/batchnorm.py `reset_parameters`, which
    /// torchvision's ResNets repeat); draws nothing.
    public func resetParameters() {
        gamma.value.fill(1)
        beta.value.fill(0)
        runningMean.value.fill(0)
        runningVar.value.fill(1)
    }
    public func initialize(convolutions: ConvolutionInit, rng: inout RandomStream) { resetParameters() }

    public func forward(_ x: Tensor, training: Bool) -> Tensor { forward(x, residual: nil, training: training) }

    public func forward(_ x: Tensor, residual: Tensor?, training: Bool) -> Tensor {
        let c = channels
        precondition(x.shape.last == c, "\(gamma.name): expected \(c) channels, got \(x.shape)")
        let rows = x.count / c
        input = x
        lastTraining = training
        lastResidual = residual != nil
        let xp = x.data
        if training {
            // One sweep over x for both moments, of the data shifted by its first row (K): Σ(x−K) and
            // Σ(x−K)² per block, combined in Double in block order (independent of the threads);
            // var = E[(x−K)²] − E[x−K]². The shift keeps the subtraction exact for a constant channel
            // (a padded border) and the cancellation small elsewhere (K is one of the samples); two passes
            // cost a full extra read of every activation. (Chan, Golub & LeVeque, "Algorithms for
            // computing the sample variance", 1983: the shifted-data algorithm.)
            let (partials, blocks) = ChannelReduce.blockPartials(rows: rows, width: 2 * c) { rr, p in
                if c % 8 == 0 {
                    for j in stride(from: 0, to: c, by: 8) {
                        let k = load8(xp + j)
                        var sum = Float8(), squares = Float8()
                        for r in rr { let d = load8(xp + r * c + j) - k; sum += d; squares += d * d }
                        store8(sum, p + j)
                        store8(squares, p + c + j)
                    }
                    return
                }
                for r in rr { let row = xp + r * c; for j in 0..<c { let d = row[j] - xp[j]; p[j] += d; p[c + j] += d * d } }
            }
            for j in 0..<c { sums[j] = 0; squares[j] = 0 }
            for b in 0..<blocks {
                let p = partials + b * 2 * c
                for j in 0..<c { sums[j] += Double(p[j]); squares[j] += Double(p[c + j]) }
            }
            for j in 0..<c {
                let shifted = sums[j] / Double(rows)
                squares[j] = max(0, squares[j] - shifted * shifted * Double(rows))    // Σ(x − mean)²
                sums[j] = shifted * Double(rows) + Double(xp[j]) * Double(rows)      // Σx
            }
            for j in 0..<c { mean[j] = Float(sums[j] / Double(rows)) }
            let rm = runningMean.value.data, rv = runningVar.value.data
            for j in 0..<c {
                let variance = squares[j] / Double(rows)
                invStd[j] = Float(1 / (variance + Double(eps)).squareRoot())
                rm[j] = (1 - momentum) * rm[j] + momentum * mean[j]
                let unbiased = rows > 1 ? variance * Double(rows) / Double(rows - 1) : variance
                rv[j] = (1 - momentum) * rv[j] + momentum * Float(unbiased)
            }
        } else {
            for j in 0..<c {
                mean[j] = runningMean.value[j]
                invStd[j] = 1 / (runningVar.value[j] + eps).squareRoot()
            }
        }
        let y = ensure(&output, x.shape)
        // y = x·scale + shift, with scale = γ·invstd and shift = β − mean·scale.
        for j in 0..<c {
            scale[j] = gamma.value[j] * invStd[j]
            shift[j] = beta.value[j] - mean[j] * scale[j]
        }
        let yp = y.data, rp = residual?.data, relu = self.relu
        lastMaskBits = relu && c % 8 == 0
        if lastMaskBits && maskCapacity < x.count / 8 {
            maskBits?.deallocate()
            maskBits = .allocate(capacity: x.count / 8)
            maskCapacity = x.count / 8
        }
        let bits = lastMaskBits ? maskBits : nil
        scale.withUnsafeBufferPointer { sb in shift.withUnsafeBufferPointer { tb in
            let s = sb.baseAddress!, t = tb.baseAddress!
            Parallel.ranges(rows, minPerTask: 512) { rr in
                if c % 8 == 0 {
                    for r in rr {
                        let o = r * c
                        for j in stride(from: 0, to: c, by: 8) {
                            var v = load8(xp + o + j) * load8(s + j) + load8(t + j)
                            if let rp { v += load8(rp + o + j) }
                            if let bits { bits[(o + j) >> 3] = BatchNorm2d.packPositive(v) }
                            if relu { v.replace(with: 0, where: v .< 0) }
                            store8(v, yp + o + j)
                        }
                    }
                    return
                }
                for r in rr {
                    let xi = xp + r * c, yo = yp + r * c
                    if let rp {
                        let ri = rp + r * c
                        if relu { for j in 0..<c { yo[j] = max(0, xi[j] * s[j] + t[j] + ri[j]) } }
                        else { for j in 0..<c { yo[j] = xi[j] * s[j] + t[j] + ri[j] } }
                    } else {
                        if relu { for j in 0..<c { yo[j] = max(0, xi[j] * s[j] + t[j]) } }
                        else { for j in 0..<c { yo[j] = xi[j] * s[j] + t[j] } }
                    }
                }
            }
        } }
        return y
    }

    /// Returns dx. After the call, `residualGradient` holds the gradient that flows into the residual input
    /// (dy masked by the ReLU), when a residual was added.
    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input, let y = output else { fatalError("\(gamma.name): backward before forward") }
        let c = channels, rows = x.count / c
        let relu = self.relu
        // Only a residual's gradient needs the (masked) dy stored: a copy the layer owns, never the caller's
        // pooled dy, which the pool must get back.
        let store = lastResidual
        let gp: UnsafeMutablePointer<Float>? = store ? ensure(&maskedGrad, x.shape).data : nil
        let dx = TensorPool.take(x.shape)
        let xp = x.data, yp = y.data, dyp = dy.data
        let bits: UnsafePointer<UInt8>? = lastMaskBits ? UnsafePointer(maskBits) : nil
        // Pass 1: mask dy by the ReLU, and reduce Σg and Σg·(x−μ) per channel (×invstd afterwards).
        mean.withUnsafeBufferPointer { mb in
            ChannelReduce.sum(rows: rows, width: 2 * c, into: &gradientSums) { rr, p in
                let mu = mb.baseAddress!, pg = p, pgx = p + c
                if c % 8 == 0 {
                    // Eight channels at a time, accumulating in registers over the block's rows.
                    for j in stride(from: 0, to: c, by: 8) {
                        var sg = Float8(), sgx = Float8()
                        let m = load8(mu + j)
                        for r in rr {
                            let o = r * c + j
                            let gj = BatchNorm2d.masked8(dyp, yp, bits, o, relu)
                            if let gp { store8(gj, gp + o) }
                            sg += gj
                            sgx += gj * (load8(xp + o) - m)
                        }
                        store8(sg, pg + j)
                        store8(sgx, pgx + j)
                    }
                    return
                }
                for r in rr {
                    let o = r * c
                    let xr = xp + o
                    for j in 0..<c {
                        let gj = BatchNorm2d.masked(dyp, yp, o + j, relu)
                        gp?[o + j] = gj
                        pg[j] += gj
                        pgx[j] += gj * (xr[j] - mu[j])
                    }
                }
            }
        }
        for j in 0..<c {
            let dbeta = Float(gradientSums[j]), dgamma = Float(gradientSums[c + j]) * invStd[j]
            beta.grad.data[j] += dbeta
            gamma.grad.data[j] += dgamma
            let gi = gamma.value[j] * invStd[j]
            if lastTraining {
                // dx = γ·invstd·(g − mean(g) − x̂·mean(g·x̂))
                let meanG = Float(gradientSums[j] / Double(rows)), meanGX = dgamma / Float(rows)
                k[j] = gi
                a[j] = gi * meanGX * invStd[j]                   // coefficient on (x − μ)
                b[j] = gi * meanG - a[j] * mean[j]                // constant, folding the −μ of x̂
            } else {
                (k[j], a[j], b[j]) = (gi, 0, 0)
            }
        }
        // Pass 2: dx = k·g − a·x − b (a = b = 0 in eval mode).
        let dxp = dx.data
        k.withUnsafeBufferPointer { kb in a.withUnsafeBufferPointer { ab in b.withUnsafeBufferPointer { bb in
            let kk = kb.baseAddress!, aa = ab.baseAddress!, bbp = bb.baseAddress!
            Parallel.ranges(rows, minPerTask: 512) { rr in
                for r in rr {
                    let o = r * c
                    if c % 8 == 0 {
                        for j in stride(from: 0, to: c, by: 8) {
                            let gj = BatchNorm2d.masked8(dyp, yp, bits, o + j, relu)
                            store8(load8(kk + j) * gj - load8(aa + j) * load8(xp + o + j) - load8(bbp + j), dxp + o + j)
                        }
                        continue
                    }
                    for j in 0..<c {
                        let gj = BatchNorm2d.masked(dyp, yp, o + j, relu)
                        dxp[o + j] = kk[j] * gj - aa[j] * xp[o + j] - bbp[j]
                    }
                }
            }
        } } }
        return dx
    }

    /// dy at `o` where the ReLU let the output through (y > 0), else 0: the gradient before the ReLU, which
    /// both backward passes recompute from y rather than store.
    @inline(__always)
    private static func masked(_ dy: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ o: Int, _ relu: Bool) -> Float {
        (!relu || y[o] > 0) ? dy[o] : 0
    }

    /// `masked` for the eight floats at `o` (a multiple of 8), from the forward's mask bits when it kept them.
    @inline(__always)
    private static func masked8(_ dy: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                _ bits: UnsafePointer<UInt8>?, _ o: Int, _ relu: Bool) -> Float8 {
        if let bits {
            let g = UnsafeRawPointer(dy + o).loadUnaligned(as: SIMD8<Int32>.self)
            return unsafeBitCast(g & unpackLanes(bits[o >> 3]), to: Float8.self)
        }
        var g = load8(dy + o)
        if relu { g.replace(with: 0, where: load8(y + o) .<= 0) }
        return g
    }

    /// Bit k set where lane k of `v` is > 0 (NaN: not set, as `y > 0` reads it). The lanes' 0/−1 bytes
    /// are gathered into the top byte by one multiplication (each contributes a distinct bit, no carries).
    @inline(__always)
    static func packPositive(_ v: Float8) -> UInt8 {
        let bytes = unsafeBitCast(SIMD8<Int8>(truncatingIfNeeded: (v .> 0)._storage), to: UInt64.self)
        return UInt8(truncatingIfNeeded: ((bytes & 0x8040_2010_0804_0201) &* 0x0101_0101_0101_0101) >> 56)
    }

    /// The inverse of `packPositive`: all-ones lanes where the bit is set, zero lanes elsewhere (byte k
    /// keeps bit k; adding 0x7F sets its top bit exactly when it is non-zero, sign extension spreads it).
    /// Written with integer and vector operations the compiler keeps vectorised (`replace(with:where:)` on a
    /// widened mask compiles to a per-lane loop).
    @inline(__always)
    static func unpackLanes(_ byte: UInt8) -> SIMD8<Int32> {
        let spread = (UInt64(byte) &* 0x0101_0101_0101_0101) & 0x8040_2010_0804_0201
        let top = unsafeBitCast(spread &+ 0x7F7F_7F7F_7F7F_7F7F, to: SIMD8<Int8>.self)
        return SIMD8<Int32>(truncatingIfNeeded: top) &>> 31
    }

    /// dL/d(residual) of the last backward: the ReLU-masked output gradient.
    public var residualGradient: Tensor {
        guard lastResidual, let maskedGrad else { fatalError("\(gamma.name): no backward after a forward with a residual") }
        return maskedGrad
    }
}
