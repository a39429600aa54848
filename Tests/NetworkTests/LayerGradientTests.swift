import XCTest
import Kernels
import Layers
import Models

/// Finite-difference checks of every layer's backward (see GradientCheck.swift for the method and the
/// tolerance), plus plain-loop reference checks of the forwards that the golden files do not cover.
/// Loss L = Σ output·R with R fixed and random, so backward is fed R.
final class LayerGradientTests: XCTestCase {
    typealias GC = GradientCheck

    // MARK: Conv2d

    /// Direct-loop NHWC convolution in Double, weight [Cout, k, k, Cin].
    static func referenceConv(_ x: Tensor, _ conv: Conv2d) -> [Double] {
        let k = conv.kernel, s = conv.stride, p = conv.padding, cin = conv.inChannels, cout = conv.outChannels
        let oh = (x.h + 2 * p - k) / s + 1, ow = (x.w + 2 * p - k) / s + 1
        var y = [Double](repeating: 0, count: x.n * oh * ow * cout)
        for b in 0..<x.n { for oy in 0..<oh { for ox in 0..<ow { for co in 0..<cout {
            var acc = conv.bias.map { Double($0.value[co]) } ?? 0
            for ky in 0..<k { for kx in 0..<k {
                let iy = oy * s - p + ky, ix = ox * s - p + kx
                guard iy >= 0, iy < x.h, ix >= 0, ix < x.w else { continue }
                for ci in 0..<cin {
                    acc += Double(x[((b * x.h + iy) * x.w + ix) * cin + ci])
                        * Double(conv.weight.value[((co * k + ky) * k + kx) * cin + ci])
                }
            } }
            y[((b * oh + oy) * ow + ox) * cout + co] = acc
        } } } }
        return y
    }

    func checkConv(cin: Int, cout: Int, kernel: Int, stride: Int, pad: Int, bias: Bool, n: Int = 2, size: Int,
                   seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let tag = "conv\(kernel)x\(kernel) s\(stride) p\(pad)\(bias ? " bias" : "")"
        let conv = Conv2d("conv", cin, cout, kernel: kernel, stride: stride, padding: pad, bias: bias)
        conv.weight.value.copy(from: GC.randomTensor(conv.weight.value.shape, seed: seed, stream: 1, scale: 0.5))
        if let b = conv.bias { b.value.copy(from: GC.randomTensor([cout], seed: seed, stream: 2, scale: 0.5)) }
        let x = GC.randomTensor([n, size, size, cin], seed: seed, stream: 3)
        let outShape = conv.outputShape(x.shape)
        let r = GC.randomTensor(outShape, seed: seed, stream: 4)

        // Forward against the direct loop.
        let y = conv.forward(x, training: true)
        XCTAssertEqual(y.shape, outShape, file: file, line: line)
        let ref = Self.referenceConv(x, conv)
        var maxDiff = 0.0
        for i in 0..<y.count { maxDiff = max(maxDiff, abs(Double(y[i]) - ref[i])) }
        print("forward \(tag): max|y - ref| = \(GC.fmt(maxDiff))")
        XCTAssertLessThan(maxDiff, 1e-4, "\(tag) forward", file: file, line: line)

        for p in conv.parameters { p.grad.zero() }
        let dx = conv.backward(r).array
        let dw = conv.weight.grad.array, db = conv.bias?.grad.array
        let loss = { GC.dot(conv.forward(x, training: true), r) }
        GC.check("\(tag) input", tensor: x, analytic: dx, loss: loss, file: file, line: line)
        GC.check("\(tag) weight", tensor: conv.weight.value, analytic: dw, loss: loss, file: file, line: line)
        if let b = conv.bias, let db {
            GC.check("\(tag) bias", tensor: b.value, analytic: db, loss: loss, file: file, line: line)
        }
    }

    func testConv3x3Stride1Pad1() {
        checkConv(cin: 3, cout: 4, kernel: 3, stride: 1, pad: 1, bias: false, size: 6, seed: 11)
        checkConv(cin: 3, cout: 4, kernel: 3, stride: 1, pad: 1, bias: true, size: 5, seed: 12)
    }

    func testConv3x3Stride2Pad1() {
        checkConv(cin: 3, cout: 5, kernel: 3, stride: 2, pad: 1, bias: false, size: 7, seed: 13)
        checkConv(cin: 2, cout: 3, kernel: 3, stride: 2, pad: 1, bias: true, size: 6, seed: 14)
    }

    func testConv1x1Stride1() {     // the pointwise path: no im2col, dx straight from one GEMM
        checkConv(cin: 5, cout: 4, kernel: 1, stride: 1, pad: 0, bias: false, size: 4, seed: 15)
        checkConv(cin: 5, cout: 4, kernel: 1, stride: 1, pad: 0, bias: true, size: 3, seed: 16)
    }

    func testConv1x1Stride2() {
        checkConv(cin: 4, cout: 6, kernel: 1, stride: 2, pad: 0, bias: false, size: 7, seed: 17)
        checkConv(cin: 4, cout: 3, kernel: 1, stride: 2, pad: 0, bias: true, size: 6, seed: 18)
    }

    func testConv7x7Stride2Pad3() {
        checkConv(cin: 3, cout: 4, kernel: 7, stride: 2, pad: 3, bias: false, size: 9, seed: 19)
        checkConv(cin: 2, cout: 3, kernel: 7, stride: 2, pad: 3, bias: true, size: 8, seed: 20)
    }

    /// Parameter gradients accumulate across backward calls (the trainer zeroes them once per step);
    /// the input gradient is overwritten.
    func testConvGradientsAccumulate() {
        let conv = Conv2d("conv", 3, 4, kernel: 3, stride: 1, padding: 1, bias: true)
        conv.weight.value.copy(from: GC.randomTensor(conv.weight.value.shape, seed: 21, stream: 1))
        let x = GC.randomTensor([2, 5, 5, 3], seed: 21, stream: 2)
        let r = GC.randomTensor(conv.outputShape(x.shape), seed: 21, stream: 3)
        for p in conv.parameters { p.grad.zero() }
        _ = conv.forward(x, training: true)
        let dx1 = conv.backward(r).array
        let w1 = conv.weight.grad.array, b1 = conv.bias!.grad.array
        _ = conv.forward(x, training: true)
        let dx2 = conv.backward(r).array
        XCTAssertEqual(dx1, dx2)
        for (a, b) in zip(conv.weight.grad.array, w1) { XCTAssertEqual(a, 2 * b, accuracy: 1e-5 * max(1, abs(b))) }
        for (a, b) in zip(conv.bias!.grad.array, b1) { XCTAssertEqual(a, 2 * b, accuracy: 1e-5 * max(1, abs(b))) }
    }

    /// Conv2d splits a batch into chunks of images (by a patch-matrix budget, and at most half the batch)
    /// that run on separate threads, each with its own scratch and its own weight-gradient partial. A batch
    /// must give what its images give one at a time (relative 1e-5: GEMM shapes differ, so rounding may),
    /// and 1 or 2 threads must give the same bits.
    func testConvChunksAndThreadsMatchPerImage() {
        let saved = Parallel.threads
        ConvBackend.current = .portable          // the chunking is the portable path's
        defer { BLAS.setThreads(saved); ConvBackend.current = .onednn }
        // (cin, cout, kernel, stride, pad, batch, size): small images (chunks of half the batch), a
        // pointwise layer, and 32×32×32 3×3 images whose patch matrices are large (one image per chunk).
        // Batches of 5 and 10 one-image chunks exercise the grouping of weight-gradient partial sums (5 chunks
        // in groups of 2 once left a fourth, empty group whose stale sums were added).
        let cases = [(6, 5, 3, 1, 1, 5, 9), (6, 5, 1, 1, 0, 5, 9), (4, 6, 3, 2, 1, 4, 9), (32, 8, 3, 1, 1, 3, 32),
                     (32, 8, 3, 1, 1, 5, 32), (32, 8, 3, 1, 1, 10, 32)]
        for (ci, (cin, cout, k, s, p, n, size)) in cases.enumerated() {
            let tag = "conv\(k)x\(k) s\(s) \(n)x\(size)x\(size)x\(cin)"
            let seed = UInt64(100 + ci)
            let x = GC.randomTensor([n, size, size, cin], seed: seed, stream: 1)
            func run(threads: Int, images: Range<Int>) -> (y: [Float], dx: [Float], dw: [Float], db: [Float]) {
                BLAS.setThreads(threads)
                let conv = Conv2d("conv", cin, cout, kernel: k, stride: s, padding: p, bias: true)
                conv.weight.value.copy(from: GC.randomTensor(conv.weight.value.shape, seed: seed, stream: 2, scale: 0.2))
                conv.bias!.value.copy(from: GC.randomTensor([cout], seed: seed, stream: 3))
                let inImage = size * size * cin
                let xb = Tensor(shape: [images.count, size, size, cin],
                                values: Array(x.array[(images.lowerBound * inImage)..<(images.upperBound * inImage)]))
                let outShape = conv.outputShape(x.shape)
                let outImage = outShape[1] * outShape[2] * cout
                let r = GC.randomTensor(outShape, seed: seed, stream: 4)
                let rb = Tensor(shape: [images.count] + outShape.dropFirst(),
                                values: Array(r.array[(images.lowerBound * outImage)..<(images.upperBound * outImage)]))
                for q in conv.parameters { q.grad.zero() }
                let y = conv.forward(xb, training: true).array
                let dx = conv.backward(rb).array
                return (y, dx, conv.weight.grad.array, conv.bias!.grad.array)
            }
            let one = run(threads: 1, images: 0..<n), two = run(threads: 2, images: 0..<n)
            XCTAssertTrue(one.y == two.y && one.dx == two.dx && one.dw == two.dw && one.db == two.db,
                          "\(tag): 1 and 2 threads differ")
            var y: [Float] = [], dx: [Float] = []
            var dw = [Float](repeating: 0, count: one.dw.count), db = [Float](repeating: 0, count: one.db.count)
            for b in 0..<n {
                let single = run(threads: 1, images: b..<(b + 1))
                y += single.y; dx += single.dx
                for i in 0..<dw.count { dw[i] += single.dw[i] }
                for i in 0..<db.count { db[i] += single.db[i] }
            }
            let errors = [Self.relDiff(one.y, y), Self.relDiff(one.dx, dx), Self.relDiff(one.dw, dw), Self.relDiff(one.db, db)]
            print("\(tag): batch vs per image, relative differences y/dx/dw/db = \(errors.map(GC.fmt))")
            XCTAssertLessThanOrEqual(errors.max()!, 1e-5, "\(tag): batch differs from per-image results")
        }
    }

    /// max|a − b| / max|b|.
    static func relDiff(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var d = 0.0, m = 0.0
        for (x, y) in zip(a, b) { d = max(d, abs(Double(x) - Double(y))); m = max(m, abs(Double(y))) }
        return d / max(m, 1e-30)
    }

    // MARK: BatchNorm2d

    /// Per-channel mean and biased variance in Double.
    static func channelStats(_ x: Tensor) -> (mean: [Double], variance: [Double]) {
        let c = x.c, rows = x.count / c
        var mean = [Double](repeating: 0, count: c), sq = [Double](repeating: 0, count: c)
        for r in 0..<rows { for j in 0..<c { mean[j] += Double(x[r * c + j]) } }
        for j in 0..<c { mean[j] /= Double(rows) }
        for r in 0..<rows { for j in 0..<c { let d = Double(x[r * c + j]) - mean[j]; sq[j] += d * d } }
        return (mean, sq.map { $0 / Double(rows) })
    }

    /// Builds a BN case and checks dx, dγ, dβ (and d residual) against finite differences.
    /// With `relu`, inputs are kept away from the kink: without a residual, β is set per channel so that
    /// the pre-activation's zero falls in a wide gap between the normalised inputs; with one, residual
    /// elements whose pre-activation is near zero are pushed away. The test asserts the margin it got.
    func checkBatchNorm(relu: Bool, residual: Bool, training: Bool, seed: UInt64, channels c: Int = 5,
                        file: StaticString = #filePath, line: UInt = #line) {
        let tag = "bn \(training ? "train" : "eval")\(relu ? " relu" : "")\(residual ? " residual" : "") c\(c)"
        let n = 4, h = 3, w = 3
        let bn = BatchNorm2d("bn", c, relu: relu)
        var rng = RandomStream(seed: seed, stream: 1)
        let shift = (0..<c).map { _ in rng.normal() }, scale = (0..<c).map { _ in rng.uniform(0.5, 2) }
        let x = Tensor(shape: [n, h, w, c])
        for i in 0..<x.count {
            // |normal| + 0.6 with a random sign: every channel has a gap of width ≥ 1.2·scale near its middle.
            let u = rng.normal()
            let v = relu && !residual ? (u < 0 ? u - 0.6 : u + 0.6) : u
            x[i] = Float(shift[i % c] + scale[i % c] * v)
        }
        for j in 0..<c {
            bn.gamma.value[j] = Float(rng.uniform(0.5, 1.5))
            bn.beta.value[j] = Float(rng.normal() * 0.3)
            bn.runningMean.value[j] = Float(shift[j] + rng.normal() * 0.3)
            bn.runningVar.value[j] = Float(scale[j] * scale[j] * rng.uniform(0.7, 1.4))
        }
        // The normalisation the layer will use, in Double.
        let (bMean, bVar) = Self.channelStats(x)
        let mu = training ? bMean : (0..<c).map { Double(bn.runningMean.value[$0]) }
        let va = training ? bVar : (0..<c).map { Double(bn.runningVar.value[$0]) }
        let rows = x.count / c
        func xhat(_ i: Int) -> Double { (Double(x[i]) - mu[i % c]) / (va[i % c] + 1e-5).squareRoot() }
        if relu && !residual {
            for j in 0..<c {
                let v = (0..<rows).map { xhat($0 * c + j) }.sorted()
                var best = rows / 4
                for k in (rows / 4)..<(3 * rows / 4) where v[k + 1] - v[k] > v[best + 1] - v[best] { best = k }
                bn.beta.value[j] = -bn.gamma.value[j] * Float((v[best] + v[best + 1]) / 2)
            }
        }
        let res: Tensor? = residual ? GC.randomTensor(x.shape, seed: seed, stream: 2) : nil
        func pre(_ i: Int) -> Double {
            Double(bn.gamma.value[i % c]) * xhat(i) + Double(bn.beta.value[i % c]) + Double(res?[i] ?? 0)
        }
        if relu, let res {
            for i in 0..<x.count where abs(pre(i)) < 0.2 {
                let push: Float = pre(i) < 0 ? -0.4 : 0.4
                res[i] += push
            }
        }
        if relu {
            let margin = (0..<x.count).map { abs(pre($0)) }.min()!
            let active = (0..<x.count).filter { pre($0) > 0 }.count
            XCTAssertGreaterThan(margin, 0.1, "\(tag): inputs too close to the ReLU kink", file: file, line: line)
            XCTAssertTrue(active > x.count / 5 && active < x.count * 4 / 5, "\(tag): ReLU mask degenerate", file: file, line: line)
        }
        let r = GC.randomTensor(x.shape, seed: seed, stream: 3)

        // Forward against the formula; running statistics in training mode.
        let rm0 = bn.runningMean.value.array, rv0 = bn.runningVar.value.array
        let y = bn.forward(x, residual: res, training: training)
        var maxDiff = 0.0
        for i in 0..<x.count {
            let ref = relu ? max(0, pre(i)) : pre(i)
            maxDiff = max(maxDiff, abs(Double(y[i]) - ref))
        }
        XCTAssertLessThan(maxDiff, 1e-5, "\(tag) forward", file: file, line: line)
        for j in 0..<c {
            let m = Double(bn.momentum)
            let em = training ? (1 - m) * Double(rm0[j]) + m * bMean[j] : Double(rm0[j])
            let ev = training ? (1 - m) * Double(rv0[j]) + m * bVar[j] * Double(rows) / Double(rows - 1) : Double(rv0[j])
            XCTAssertEqual(Double(bn.runningMean.value[j]), em, accuracy: 1e-5, "\(tag) running mean", file: file, line: line)
            XCTAssertEqual(Double(bn.runningVar.value[j]), ev, accuracy: 1e-5 * ev, "\(tag) running var", file: file, line: line)
        }

        for p in bn.parameters { p.grad.zero() }
        let dx = bn.backward(r).array
        let dres = residual ? bn.residualGradient.array : []
        let dg = bn.gamma.grad.array, db = bn.beta.grad.array
        let loss = { GC.dot(bn.forward(x, residual: res, training: training), r) }
        GC.check("\(tag) input", tensor: x, analytic: dx, loss: loss, file: file, line: line)
        GC.check("\(tag) gamma", tensor: bn.gamma.value, analytic: dg, loss: loss, file: file, line: line)
        GC.check("\(tag) beta", tensor: bn.beta.value, analytic: db, loss: loss, file: file, line: line)
        if let res {
            GC.check("\(tag) residual", tensor: res, analytic: dres, loss: loss, file: file, line: line)
        }
    }

    func testBatchNormTraining() { checkBatchNorm(relu: false, residual: false, training: true, seed: 31) }
    func testBatchNormTrainingReLU() { checkBatchNorm(relu: true, residual: false, training: true, seed: 32) }
    func testBatchNormTrainingResidualReLU() { checkBatchNorm(relu: true, residual: true, training: true, seed: 33) }
    func testBatchNormTrainingResidual() { checkBatchNorm(relu: false, residual: true, training: true, seed: 34) }
    func testBatchNormEval() { checkBatchNorm(relu: false, residual: false, training: false, seed: 35) }
    func testBatchNormEvalResidualReLU() { checkBatchNorm(relu: true, residual: true, training: false, seed: 36) }
    /// 16 channels: the 8-wide paths (one-sweep moments, vector normalisation and both backward passes).
    func testBatchNormEightWide() {
        checkBatchNorm(relu: true, residual: true, training: true, seed: 37, channels: 16)
        checkBatchNorm(relu: true, residual: false, training: true, seed: 38, channels: 16)
        checkBatchNorm(relu: false, residual: true, training: true, seed: 39, channels: 16)
        checkBatchNorm(relu: true, residual: true, training: false, seed: 40, channels: 16)
    }

    // MARK: Pooling

    func testMaxPool3x3Stride2Pad1() {
        for (size, seed) in [(7, UInt64(41)), (8, UInt64(42))] {
            let n = 2, c = 3
            let pool = MaxPool2d(kernel: 3, stride: 2, padding: 1)
            // Distinct values 0.05 apart, all negative: a ±eps step never changes which element wins, and a
            // pool that let the zero padding win would be caught by the forward check.
            var rng = RandomStream(seed: seed, stream: 1)
            let count = n * size * size * c
            let perm = rng.permutation(count)
            let x = Tensor(shape: [n, size, size, c])
            for i in 0..<count { x[i] = -0.05 * Float(perm[i] + 1) }
            let y = pool.forward(x, training: true)
            let o = (size + 2 - 3) / 2 + 1
            XCTAssertEqual(y.shape, [n, o, o, c])
            for b in 0..<n { for oy in 0..<o { for ox in 0..<o { for ch in 0..<c {
                var m = -Float.infinity
                for iy in max(0, 2 * oy - 1)...min(size - 1, 2 * oy + 1) {
                    for ix in max(0, 2 * ox - 1)...min(size - 1, 2 * ox + 1) { m = max(m, x[((b * size + iy) * size + ix) * c + ch]) }
                }
                XCTAssertEqual(y[((b * o + oy) * o + ox) * c + ch], m)
            } } } }
            let r = GC.randomTensor(y.shape, seed: seed, stream: 2)
            let dx = pool.backward(r).array
            GC.check("maxpool \(size)x\(size) input", tensor: x, analytic: dx) { GC.dot(pool.forward(x, training: true), r) }
        }
    }

    func testGlobalAvgPool() {
        let pool = GlobalAvgPool()
        let x = GC.randomTensor([2, 3, 4, 5], seed: 43)
        let y = pool.forward(x, training: true)
        XCTAssertEqual(y.shape, [2, 5])
        for b in 0..<2 { for j in 0..<5 {
            var s = 0.0
            for p in 0..<12 { s += Double(x[(b * 12 + p) * 5 + j]) }
            XCTAssertEqual(Double(y[b * 5 + j]), s / 12, accuracy: 1e-6)
        } }
        let r = GC.randomTensor(y.shape, seed: 43, stream: 1)
        let dx = pool.backward(r).array
        GC.check("global avg pool input", tensor: x, analytic: dx) { GC.dot(pool.forward(x, training: true), r) }
    }

    // MARK: Linear

    func testLinear() {
        let lin = Linear("fc", 6, 5)
        lin.weight.value.copy(from: GC.randomTensor([5, 6], seed: 51, stream: 1, scale: 0.5))
        lin.bias.value.copy(from: GC.randomTensor([5], seed: 51, stream: 2, scale: 0.5))
        let x = GC.randomTensor([3, 6], seed: 51, stream: 3)
        let y = lin.forward(x, training: true)
        for i in 0..<3 { for o in 0..<5 {
            var s = Double(lin.bias.value[o])
            for k in 0..<6 { s += Double(x[i * 6 + k]) * Double(lin.weight.value[o * 6 + k]) }
            XCTAssertEqual(Double(y[i * 5 + o]), s, accuracy: 1e-5)
        } }
        let r = GC.randomTensor(y.shape, seed: 51, stream: 4)
        for p in lin.parameters { p.grad.zero() }
        let dx = lin.backward(r).array
        let dw = lin.weight.grad.array, db = lin.bias.grad.array
        let loss = { GC.dot(lin.forward(x, training: true), r) }
        GC.check("linear input", tensor: x, analytic: dx, loss: loss)
        GC.check("linear weight", tensor: lin.weight.value, analytic: dw, loss: loss)
        GC.check("linear bias", tensor: lin.bias.value, analytic: db, loss: loss)
    }

    // MARK: SoftTargetCrossEntropy

    func checkCrossEntropy(targetSum: ClosedRange<Double>?, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let b = 4, k = 10
        let z = GC.randomTensor([b, k], seed: seed, stream: 1, scale: 2)
        var rng = RandomStream(seed: seed, stream: 2)
        let t = Tensor(shape: [b, k])
        for i in 0..<b {
            let raw = (0..<k).map { _ in exp(rng.normal() * 1.5) }
            let total = raw.reduce(0, +)
            let want = targetSum.map { rng.uniform($0.lowerBound, $0.upperBound) } ?? 1
            for c in 0..<k { t[i * k + c] = Float(raw[c] / total * want) }
        }
        let ce = SoftTargetCrossEntropy()
        let loss = ce.forward(logits: z, targets: t)
        // Reference loss in Double.
        var ref = 0.0
        for i in 0..<b {
            let row = (0..<k).map { Double(z[i * k + $0]) }
            let lse = log(row.map { exp($0) }.reduce(0, +))
            for c in 0..<k { ref -= Double(t[i * k + c]) * (row[c] - lse) }
        }
        XCTAssertEqual(loss, ref / Double(b), accuracy: 1e-6 * max(1, abs(ref)), file: file, line: line)
        let g = ce.backward().array
        let tag = targetSum == nil ? "soft CE (targets sum to 1)" : "soft CE (targets do not sum to 1)"
        GC.check("\(tag) logits", tensor: z, analytic: g, loss: { ce.forward(logits: z, targets: t) },
                 file: file, line: line)
        // `scale` multiplies the gradient.
        _ = ce.forward(logits: z, targets: t)
        let g3 = ce.backward(scale: 3).array
        for (a, b) in zip(g3, g) { XCTAssertEqual(a, 3 * b, accuracy: 1e-6, file: file, line: line) }
    }

    func testSoftTargetCrossEntropy() { checkCrossEntropy(targetSum: nil, seed: 61) }
    func testSoftTargetCrossEntropyUnnormalizedTargets() { checkCrossEntropy(targetSum: 0.3...1.7, seed: 62) }

    func testSoftTargetCrossEntropyLargeLogits() {
        let z = Tensor(shape: [2, 3], values: [1000, 0, -1000, -500, 700, 699])
        let t = Tensor(shape: [2, 3], values: [0.5, 0.5, 0, 0, 0.25, 0.75])
        let ce = SoftTargetCrossEntropy()
        let loss = ce.forward(logits: z, targets: t)
        // Row 0: 0.5·1000; row 1: 0.25·log(1+e⁻¹) + 0.75·(1 + log(1+e⁻¹)).
        let l1 = log(1 + exp(-1.0))
        XCTAssertEqual(loss, (500 + 0.25 * l1 + 0.75 * (1 + l1)) / 2, accuracy: 1e-9 * 500)
        XCTAssertTrue(ce.backward().array.allSatisfy { $0.isFinite })
    }

    // MARK: Whole network

    /// ResNet-20 in training mode, its parameters randomised (BN γ ∈ [0.5, 1.5], β ~ N(0, 0.2²)).
    static func tinyResNet(seed: UInt64) -> ResNet {
        let model = ResNet(.resnet20, inChannels: 3, numClasses: 10)
        model.initialize(seed: seed)
        var rng = RandomStream(seed: seed, stream: 1)
        for p in model.parameters {
            switch p.kind {
            case .normScale: for i in 0..<p.value.count { p.value[i] = Float(rng.uniform(0.5, 1.5)) }
            case .normShift: for i in 0..<p.value.count { p.value[i] = Float(rng.normal() * 0.2) }
            default: break
            }
        }
        return model
    }

    /// ResNet-20 on 2×8×8×3 in training mode: every parameter tensor's gradient from
    /// `model.backward(logitsGradient:)` against finite differences of L = Σ logits·R.
    ///   * per tensor, and for all tensors at once, the derivative along the analytic gradient
    ///     (step 3e-4 in parameter space, tolerance 5e-2; measured ≤ 2.5e-2, median ≈ 1e-3);
    ///   * a sample of 3 elements of every tensor (step 3e-4), each within 0.1 × the tensor's largest
    ///     analytic gradient (measured ≤ 5.5e-2: the loss has kinks ~1e-4 apart, see GradientCheck).
    /// The exact comparison of this network's gradients is GoldenTests.testResNet20 (against PyTorch).
    func testResNet20ParameterGradients() {
        let model = Self.tinyResNet(seed: 71)
        let x = GC.randomTensor([2, 8, 8, 3], seed: 71, stream: 2)
        let r = GC.randomTensor([2, 10], seed: 71, stream: 3)
        for p in model.parameters { p.grad.zero() }
        _ = model.forward(x, training: true)
        model.backward(logitsGradient: r)
        let params = model.parameters
        XCTAssertEqual(params.count, 65)
        let analytic = params.map { $0.grad.array }
        let loss = { GC.dot(model.forward(x, training: true), r) }
        for (pi, p) in params.enumerated() {
            GC.checkDirectional("resnet20 \(p.name)", tensors: [p.value], analytic: [analytic[pi]], eps: 3e-4,
                                tolerance: 5e-2, loss: loss)
        }
        GC.checkDirectional("resnet20 all parameters", tensors: params.map(\.value), analytic: analytic, eps: 3e-4,
                            tolerance: 5e-2, loss: loss)
        for (pi, p) in params.enumerated() {
            let scale = analytic[pi].map { abs(Double($0)) }.max()!
            GC.check("resnet20 \(p.name) elements", tensor: p.value, analytic: analytic[pi],
                     indices: GC.sample(p.value.count, count: 3, seed: UInt64(pi)), eps: 3e-4, tolerance: 0.1,
                     scale: scale, floor: 1e-3, loss: loss)
        }
    }

    /// One training step of ResNet-20 with 1 and with 2 threads. Portable convolutions: the same bits (the
    /// parallel loops write disjoint memory and reduce in a fixed order). oneDNN's: its weight-gradient sums
    /// follow the thread count, so within 1e-5 (same threads, same bits: ConvBackendTests, DeterminismTests).
    func testResNet20ThreadCountInvariance() {
        let saved = Parallel.threads
        defer { BLAS.setThreads(saved) }
        func step(threads: Int) -> [Float] {
            BLAS.setThreads(threads)
            let model = Self.tinyResNet(seed: 91)
            let x = GC.randomTensor([4, 16, 16, 3], seed: 91, stream: 2)
            let r = GC.randomTensor([4, 10], seed: 91, stream: 3)
            for p in model.parameters { p.grad.zero() }
            let logits = model.forward(x, training: true).array
            model.backward(logitsGradient: r)
            return logits + model.parameters.flatMap { $0.grad.array } + model.buffers.flatMap { $0.value.array }
        }
        defer { ConvBackend.current = .onednn }
        for backend in [ConvBackend.portable, .onednn] {
            ConvBackend.current = backend
            let one = step(threads: 1), two = step(threads: 2)
            let rel = Self.relDiff(two, one)
            print("resnet20 1 vs 2 threads, \(backend): \(one == two ? "bitwise equal" : "max relative difference \(GC.fmt(rel))")")
            if backend == .portable { XCTAssertEqual(one, two, "portable convolutions: 1 and 2 threads differ") }
            XCTAssertLessThanOrEqual(rel, 1e-5)
        }
    }

    // MARK: The checks can fail

    /// Feeds the checker gradients with the bugs it is meant to catch and asserts that each one exceeds
    /// the tolerance the real tests use.
    func testCheckerRejectsWrongGradients() {
        // Conv2d: a negated input gradient, and a weight gradient laid out [Cin, k, k, Cout].
        let conv = Conv2d("conv", 3, 4, kernel: 3, stride: 2, padding: 1)
        conv.weight.value.copy(from: GC.randomTensor(conv.weight.value.shape, seed: 81, stream: 1, scale: 0.5))
        let x = GC.randomTensor([2, 5, 5, 3], seed: 81, stream: 2)
        let r = GC.randomTensor(conv.outputShape(x.shape), seed: 81, stream: 3)
        conv.weight.grad.zero()
        _ = conv.forward(x, training: true)
        let dx = conv.backward(r).array, dw = conv.weight.grad.array
        let convLoss = { GC.dot(conv.forward(x, training: true), r) }
        XCTAssertLessThan(GC.measure(tensor: x, analytic: dx, loss: convLoss).error, 1e-2)
        XCTAssertGreaterThan(GC.measure(tensor: x, analytic: dx.map { -$0 }, loss: convLoss).error, 1)
        var dwT = dw
        for o in 0..<4 { for t in 0..<9 { for i in 0..<3 { dwT[(i * 9 + t) * 4 + o] = dw[(o * 9 + t) * 3 + i] } } }
        XCTAssertGreaterThan(GC.measure(tensor: conv.weight.value, analytic: dwT, loss: convLoss).error, 0.1)

        // BatchNorm2d (training): dx without the −x̂·mean(g·x̂) term, i.e. γ·invstd·(g − mean g).
        let bn = BatchNorm2d("bn", 3, relu: false)
        let xb = GC.randomTensor([4, 3, 3, 3], seed: 82, stream: 1, scale: 1.5, shift: 0.5)
        let rb = GC.randomTensor(xb.shape, seed: 82, stream: 2)
        _ = bn.forward(xb, training: true)
        let dxb = bn.backward(rb).array
        let bnLoss = { GC.dot(bn.forward(xb, training: true), rb) }
        let (_, variance) = Self.channelStats(xb)
        let rows = xb.count / 3
        var meanG = [Double](repeating: 0, count: 3)
        for i in 0..<rb.count { meanG[i % 3] += Double(rb[i]) / Double(rows) }
        let noVarianceTerm = (0..<xb.count).map { i in
            Float((Double(rb[i]) - meanG[i % 3]) / (variance[i % 3] + 1e-5).squareRoot())
        }
        XCTAssertLessThan(GC.measure(tensor: xb, analytic: dxb, loss: bnLoss).error, 1e-2)
        XCTAssertGreaterThan(GC.measure(tensor: xb, analytic: noVarianceTerm, loss: bnLoss).error, 0.1)

        // Soft-target cross entropy with targets not summing to 1: (p − y)/B instead of (p·Σy − y)/B.
        let z = GC.randomTensor([2, 5], seed: 83, stream: 1)
        let t = Tensor(shape: [2, 5], values: [0.1, 0.2, 0.1, 0.0, 0.1, 0.3, 0.3, 0.2, 0.4, 0.0])
        let ce = SoftTargetCrossEntropy()
        _ = ce.forward(logits: z, targets: t)
        let g = ce.backward().array
        let p = ce.lastProbabilities!.array
        let noSum = (0..<10).map { (p[$0] - t[$0]) / 2 }
        let ceLoss = { ce.forward(logits: z, targets: t) }
        XCTAssertLessThan(GC.measure(tensor: z, analytic: g, loss: ceLoss).error, 1e-2)
        XCTAssertGreaterThan(GC.measure(tensor: z, analytic: noSum, loss: ceLoss).error, 0.1)

        // ResNet-20: a gradient 10 % too large, a negated one, and one with its elements permuted,
        // each on a single tensor, against the directional tolerance.
        let model = Self.tinyResNet(seed: 84)
        let xm = GC.randomTensor([2, 8, 8, 3], seed: 84, stream: 2)
        let rm = GC.randomTensor([2, 10], seed: 84, stream: 3)
        for p in model.parameters { p.grad.zero() }
        _ = model.forward(xm, training: true)
        model.backward(logitsGradient: rm)
        let modelLoss = { GC.dot(model.forward(xm, training: true), rm) }
        let w = model.parameters.first { $0.name == "layer2.0.conv1.weight" }!
        let gw = w.grad.array
        func err(_ a: [Float]) -> Double {
            GC.measureDirectional(tensors: [w.value], analytic: [a], eps: 3e-4, loss: modelLoss).error
        }
        XCTAssertLessThan(err(gw), 5e-2)
        XCTAssertGreaterThan(err(gw.map { 1.1 * $0 }), 5e-2)
        XCTAssertGreaterThan(err(gw.map { -$0 }), 1)
        var rng = RandomStream(seed: 84, stream: 4)
        let perm = rng.permutation(gw.count)
        XCTAssertGreaterThan(err(perm.map { gw[$0] }), 0.5)
    }
}
