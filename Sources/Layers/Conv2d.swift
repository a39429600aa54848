import Foundation
import Kernels

/// 2-D convolution over NHWC input as im2col + GEMM, one GEMM per chunk of images.
/// Weight layout [Cout, kh, kw, Cin] (PyTorch's channels_last order), so `out = col · Wᵀ`.
///
/// Why chunks run in parallel with single-threaded BLAS: a chunk's patch matrix is sized to stay in the
/// core's cache between im2col writing it and the GEMM reading it, and each core works on its own images
/// from im2col to col2im with no hand-off. A multi-threaded GEMM per chunk would split tiny GEMMs and
/// leave OpenBLAS's spinning threads competing with ours. The chunking depends on the layer's shape and
/// the batch only, never on the thread count, and weight gradients are summed chunk by chunk in a fixed
/// order: results are bit-identical with 1 or 2 threads.
///
/// The patch matrix is recomputed in backward rather than kept: it is 9× the activation for 3×3 kernels.
public final class Conv2d: Layer {
    public let weight: Parameter
    public let bias: Parameter?
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    /// Multiply-adds ×2 of the last forward pass and of the last backward pass (benchmarks report GFLOP/s
    /// from them; a backward without the input gradient does half the work).
    public private(set) var lastForwardFlops = 0.0
    public private(set) var lastBackwardFlops = 0.0
    /// Seconds and FLOPs of every forward and backward since `resetTiming()`: the layer's achieved
    /// GFLOP/s, which `rmtrain bench` prints per convolution shape.
    public private(set) var timing = (seconds: 0.0, flops: 0.0)
    public func resetTiming() { timing = (0, 0) }

    private var input: Tensor?
    private var output: Tensor?
    private var geometry: ConvGeometry?
    /// Shared by all convolutions: only one runs at a time, and its partial sums are dead after backward.
    nonisolated(unsafe) private static var partialWeightGradients: Tensor?
    private var flippedWeight: Tensor?
    /// oneDNN primitives per input shape [n, h, w] (the last batch of an epoch may be smaller, evaluation
    /// may run other sizes); nil entries mark a shape oneDNN could not build: it takes the portable path.
    /// A struct key: an array key would allocate on every lookup.
    private struct ShapeKey: Hashable { let n: Int, h: Int, w: Int }
    private var onednn: [ShapeKey: OneDNNConvolution?] = [:]
    /// The multiplications' precision (`--precision`). bf16-mixed runs oneDNN's direct bf16 kernels where
    /// `Precision.bf16Kernels` says they pay on this CPU, float32's otherwise; a shape oneDNN cannot build in
    /// bf16 runs in float32 (said once on stderr).
    public var precision = Precision.fp32 {
        didSet { if precision != oldValue { onednn = [:] } }
    }

    /// Stride-1 convolutions take the input gradient as a convolution of dy with the flipped, transposed
    /// kernel: im2col(dy) · W′ᵀ. That GEMM has the forward's good shape (K = k·k·Cout) and writes dx
    /// once, where dcol = dy · W has K = Cout (16 in a CIFAR ResNet's first stage) and col2im adds
    /// into every input pixel k·k times.
    private var usesTransposedConvolution: Bool { stride == 1 && kernel > 1 }

    public init(_ name: String, _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1,
                padding: Int = 0, bias: Bool = false) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        weight = Parameter(name + ".weight", shape: [outChannels, kernel, kernel, inChannels], kind: .weight)
        self.bias = bias ? Parameter(name + ".bias", shape: [outChannels], kind: .bias) : nil
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }
    public var convolutions: [Conv2d] { [self] }

    /// The weight as `rule` says, element by element in OHWI order from `rng`, then the bias if any:
    /// 0 under torchvision's rule (torchvision/models/vgg.py `_initialize_weights`), U(±1/√fan_in) under
    /// PyTorch's default. fan_out = Cout·k·k, fan_in = k·k·Cin.
    public func initialize(convolutions rule: ConvolutionInit, rng: inout RandomStream) {
        let w = weight.value
        switch rule {
        case .kaimingNormalFanOut:
            let std = (2.0 / Double(outChannels * kernel * kernel)).squareRoot()
            for i in 0..<w.count { w[i] = Float(rng.normal() * std) }
            bias?.value.fill(0)
        case .pytorchDefault:
            let bound = 1 / Double(kernel * kernel * inChannels).squareRoot()
            for i in 0..<w.count { w[i] = Float(rng.uniform(-bound, bound)) }
            if let b = bias?.value { for i in 0..<b.count { b[i] = Float(rng.uniform(-bound, bound)) } }
        }
    }

    public func outputShape(_ inShape: [Int]) -> [Int] {
        let g = geometryFor(inShape)
        return [inShape[0], g.oh, g.ow, outChannels]
    }

    private func geometryFor(_ s: [Int]) -> ConvGeometry {
        precondition(s.count == 4 && s[3] == inChannels, "\(weight.name): expected NHWC input with \(inChannels) channels, got \(s)")
        return ConvGeometry(h: s[1], w: s[2], c: s[3], kh: kernel, kw: kernel, stride: stride, pad: padding)
    }

    /// Images per chunk: as many as keep the patch matrix within `Workspace.chunkBudget` (cache-sized),
    /// but at least enough for 256 GEMM rows — the weight-gradient GEMM sums over a chunk's rows, and a
    /// short sum makes it write the whole weight gradient for little work (late layers: 4×4 maps, 4.7 M
    /// weights) — and at most half the batch so that two cores have work.
    private func imagesPerChunk(_ g: ConvGeometry, batch: Int) -> Int {
        let perImage = max(g.oh * g.ow * max(g.patch, outChannels), g.h * g.w * kernel * kernel * outChannels)
        let fit = max(1, Workspace.chunkBudget / perImage)
        let forRows = (256 + g.oh * g.ow - 1) / (g.oh * g.ow)
        return max(1, min(max(fit, forRows), (batch + 1) / 2))
    }

    /// Weight-gradient accumulators: chunks are dealt into at most this many groups, each group summed
    /// in its own buffer in chunk order, the groups added in group order. Fixed, so that results do not
    /// depend on the thread count; small, so that memory and the final sum stay small.
    static let weightGradientGroups = 4

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let y = timed(&timing.seconds) { forwardKernels(x) }
        timing.flops += lastForwardFlops
        return y
    }

    private func forwardKernels(_ x: Tensor) -> Tensor {
        let g = geometryFor(x.shape)
        geometry = g
        input = x
        let n = x.n
        lastForwardFlops = 2 * Double(n * g.oh * g.ow) * Double(outChannels * g.patch)
        let y = ensure(&output, [n, g.oh, g.ow, outChannels])
        let rowsPerImage = g.oh * g.ow, inImage = g.h * g.w * g.c
        if let fast = onednnConvolution(batch: n, g) {
            fast.forward(x: x.data, weight: weight.value.data, y: y.data)
            addBias(y.data, rows: n * rowsPerImage)
            return y
        }
        let per = imagesPerChunk(g, batch: n)
        let chunks = (n + per - 1) / per
        let cout = outChannels, w = weight.value.data, xp = x.data, yp = y.data
        Workspace.forEachChunk(chunks) { chunk, scratch in
            let n0 = chunk * per, images = min(per, n - n0), rows = images * rowsPerImage
            let a = patchMatrix(xp + n0 * inImage, images: images, g, scratch)
            sgemm(transB: true, m: rows, n: cout, k: g.patch, a: a, lda: g.patch,
                  b: w, ldb: g.patch, c: yp + n0 * rowsPerImage * cout, ldc: cout)
        }
        addBias(yp, rows: n * rowsPerImage)
        return y
    }

    private func addBias(_ yp: UnsafeMutablePointer<Float>, rows: Int) {
        guard let bias else { return }
        let b = bias.value.data, cout = outChannels
        Parallel.ranges(rows, minPerTask: 1024) { rows in
            for r in rows { let row = yp + r * cout; for c in 0..<cout { row[c] += b[c] } }
        }
    }

    /// The oneDNN primitives for this batch size, created on first use: Winograd where
    /// `OneDNNConvolution.usesWinograd` chooses it and the CPU has it (AVX-512), direct otherwise; nil with
    /// `RMTRAIN_CONV=portable` or when oneDNN cannot build the shape (said once on stderr).
    private func onednnConvolution(batch n: Int, _ g: ConvGeometry) -> OneDNNConvolution? {
        guard ConvBackend.current != .portable else { return nil }
        let key = ShapeKey(n: n, h: g.h, w: g.w)
        if let known = onednn[key] { return known }
        if precision == .bf16Mixed && Precision.bf16Kernels.runs {
            do {
                let made = try OneDNNConvolution(batch: n, g, outChannels: outChannels, precision: .bf16Mixed)
                onednn[key] = made
                return made
            } catch {
                Diagnostics.warning("\(weight.name): \(error) in bf16; float32 used")
            }
        }
        if ConvBackend.current == .onednn, OneDNNConvolution.usesWinograd(g, outChannels: outChannels),
           let made = try? OneDNNConvolution(batch: n, g, outChannels: outChannels, winograd: true) {
            onednn[key] = made
            return made
        }
        do {
            let made = try OneDNNConvolution(batch: n, g, outChannels: outChannels)
            onednn[key] = made
            return made
        } catch {
            Diagnostics.warning("\(weight.name): \(error); portable convolution used")
            onednn[key] = .some(nil)
            return nil
        }
    }

    /// "H×W" of the last input, "" before the first forward.
    public var lastInputSize: String { input.map { "\($0.h)×\($0.w)" } ?? "" }

    /// oneDNN's kernel names for the last input shape this layer ran, or the portable path's name.
    public var backendDescription: String {
        guard ConvBackend.current != .portable, let x = input, let made = onednn[ShapeKey(n: x.n, h: x.h, w: x.w)] ?? nil else { return "im2col+sgemm" }
        let i = made.implementation
        return "oneDNN \(made.precision.rawValue) \(i.forward) / \(i.backwardData) / \(i.backwardWeights)"
    }

    public func backward(_ dy: Tensor) -> Tensor { backward(dy, inputGradient: true)! }

    /// The weight (and bias) gradients alone: the first layer of a network needs no input gradient, and
    /// skipping it saves a GEMM and a col2im.
    public func backwardParameters(_ dy: Tensor) { _ = backward(dy, inputGradient: false) }

    private func backward(_ dy: Tensor, inputGradient: Bool) -> Tensor? {
        let dx = timed(&timing.seconds) { backwardKernels(dy, inputGradient: inputGradient) }
        timing.flops += lastBackwardFlops
        return dx
    }

    private func backwardKernels(_ dy: Tensor, inputGradient: Bool) -> Tensor? {
        guard let x = input, let g = geometry else { fatalError("\(weight.name): backward before forward") }
        let n = x.n
        let rowsPerImage = g.oh * g.ow, inImage = g.h * g.w * g.c
        let per = imagesPerChunk(g, batch: n)
        let chunks = (n + per - 1) / per
        let wsize = weight.value.count
        let chunksPerGroup = (chunks + Conv2d.weightGradientGroups - 1) / Conv2d.weightGradientGroups
        let groups = (chunks + chunksPerGroup - 1) / chunksPerGroup     // none of them empty
        let pp = ensure(&Conv2d.partialWeightGradients, [groups * wsize]).data
        let dx: Tensor? = inputGradient ? TensorPool.take(x.shape) : nil
        lastBackwardFlops = lastForwardFlops * (inputGradient ? 2 : 1)
        let cout = outChannels, w = weight.value.data, xp = x.data, dyp = dy.data
        let dxp = dx?.data
        if let fast = onednnConvolution(batch: n, g) {
            fast.backward(x: xp, dy: dyp, weight: w, dx: dxp, dw: pp)
            addWeightGradient(from: pp, groups: 1)
            addBiasGradient(dyp, rows: n * rowsPerImage)
            return dx
        }
        let flippedPointer: UnsafePointer<Float>? = (dx != nil && usesTransposedConvolution) ? UnsafePointer(flipWeights()) : nil
        Workspace.forEachChunk(groups) { group, scratch in
          for chunk in (group * chunksPerGroup)..<min(chunks, (group + 1) * chunksPerGroup) {
            let n0 = chunk * per, images = min(per, n - n0), rows = images * rowsPerImage
            let dyChunk = dyp + n0 * rowsPerImage * cout
            // dW(group) += dyᵀ · col
            let a = patchMatrix(xp + n0 * inImage, images: images, g, scratch)
            sgemm(transA: true, m: cout, n: g.patch, k: rows, a: dyChunk, lda: cout,
                  b: a, ldb: g.patch, beta: chunk == group * chunksPerGroup ? 0 : 1, c: pp + group * wsize, ldc: g.patch)
            guard let dxp else { continue }
            let dxChunk = dxp + n0 * inImage
            if let flipped = flippedPointer {
                let gT = ConvGeometry(h: g.oh, w: g.ow, c: cout, kh: g.kh, kw: g.kw, stride: 1, pad: g.kh - 1 - g.pad)
                let col = scratch.buffer(images * inImage / g.c * gT.patch)
                im2col(dyChunk, images: images, gT, col: col)
                sgemm(transB: true, m: images * g.h * g.w, n: g.c, k: gT.patch, a: col, lda: gT.patch,
                      b: flipped, ldb: gT.patch, c: dxChunk, ldc: g.c)
            } else if g.isPointwise {
                sgemm(m: rows, n: g.patch, k: cout, a: dyChunk, lda: cout, b: w, ldb: g.patch, c: dxChunk, ldc: g.patch)
            } else {
                // dcol = dy · W, scattered back to pixels (the patch matrix is dead by now: reuse it).
                let dcol = scratch.buffer(rows * g.patch)
                sgemm(m: rows, n: g.patch, k: cout, a: dyChunk, lda: cout, b: w, ldb: g.patch, c: dcol, ldc: g.patch)
                col2im(dcol, images: images, g, dx: dxChunk)
            }
          }
        }
        addWeightGradient(from: pp, groups: groups)
        addBiasGradient(dyp, rows: n * rowsPerImage)
        return dx
    }

    /// Adds the groups' weight gradients in group order (fixed, whatever the thread count).
    private func addWeightGradient(from pp: UnsafeMutablePointer<Float>, groups: Int) {
        let gw = weight.grad.data, wsize = weight.value.count
        Parallel.ranges(wsize, minPerTask: 1 << 14) { r in
            for group in 0..<groups {
                let p = pp + group * wsize
                for i in r { gw[i] += p[i] }
            }
        }
    }

    private func addBiasGradient(_ dyp: UnsafeMutablePointer<Float>, rows: Int) {
        guard let bias else { return }
        let cout = outChannels
        let sums = ChannelReduce.sum(rows: rows, width: cout) { rows, p in
            for r in rows { let row = dyp + r * cout; for c in 0..<cout { p[c] += row[c] } }
        }
        for c in 0..<cout { bias.grad.data[c] += Float(sums[c]) }
    }
}

extension Conv2d {
    /// The GEMM operand of `images` images: the input itself for a pointwise convolution, else its
    /// im2col patches in `scratch`.
    fileprivate func patchMatrix(_ x: UnsafeMutablePointer<Float>, images: Int, _ g: ConvGeometry,
                                 _ scratch: Workspace) -> UnsafePointer<Float> {
        if g.isPointwise { return UnsafePointer(x) }
        let col = scratch.buffer(images * g.oh * g.ow * g.patch)
        im2col(x, images: images, g, col: col)
        return UnsafePointer(col)
    }

    /// W′[ci, ky, kx, co] = W[co, k−1−ky, k−1−kx, ci]: the kernel of the transposed convolution.
    fileprivate func flipWeights() -> UnsafeMutablePointer<Float> {
        let k = kernel, cin = inChannels, cout = outChannels
        let f = ensure(&flippedWeight, [cin, k, k, cout])
        let w = weight.value.data, fp = f.data
        Parallel.ranges(cout, minPerTask: 16) { cos in
            for co in cos {
                for ky in 0..<k {
                    for kx in 0..<k {
                        let src = w + ((co * k + (k - 1 - ky)) * k + (k - 1 - kx)) * cin
                        for ci in 0..<cin { fp[((ci * k + ky) * k + kx) * cout + co] = src[ci] }
                    }
                }
            }
        }
        return fp
    }
}

/// Per-thread scratch for patch matrices. Task t of `forEachChunk` owns scratch t, and handles chunks
/// t, t + T, t + 2T, …: a chunk's result never depends on which task ran it.
public final class Workspace: @unchecked Sendable {
    /// Floats of patch matrix per chunk (default 256 K floats, 1 MiB: a Zen 4 core's L2). Override with
    /// RMTRAIN_CONV_CHUNK_FLOATS to experiment.
    nonisolated(unsafe) public static var chunkBudget =
        Int(ProcessInfo.processInfo.environment["RMTRAIN_CONV_CHUNK_FLOATS"] ?? "") ?? (256 << 10)
    nonisolated(unsafe) private static var scratch: [Workspace] = []
    private var storage: Tensor?

    public func buffer(_ count: Int) -> UnsafeMutablePointer<Float> { ensure(&storage, [count]).data }

    /// Runs `body(chunk, scratch)` for every chunk, spread over `Parallel.threads` tasks. GEMMs inside run
    /// single-threaded in BLAS (see `BLAS.setThreads`).
    public static func forEachChunk(_ chunks: Int, _ body: (Int, Workspace) -> Void) {
        let tasks = min(Parallel.threads, chunks)
        while scratch.count < max(tasks, 1) { scratch.append(Workspace()) }
        let pool = scratch
        Parallel.forEach(tasks) { t in
            var chunk = t
            while chunk < chunks { body(chunk, pool[t]); chunk += tasks }
        }
    }
}
