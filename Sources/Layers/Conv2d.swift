import Foundation
import Kernels

/// 2-D convolution over NHWC input as im2col + one GEMM per chunk of images.
/// Weight layout [Cout, kh, kw, Cin] (PyTorch's channels_last order), so `out = col · Wᵀ`.
/// The patch matrix is recomputed in backward rather than kept: it is 9× the activation for 3×3 kernels.
public final class Conv2d: Layer {
    public let weight: Parameter
    public let bias: Parameter?
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    /// The first layer of a network needs no input gradient; skipping it saves a GEMM and a col2im.
    public var needsInputGradient = true

    /// Multiply-adds ×2 of the last forward pass (benchmarks report GFLOP/s from it).
    public private(set) var lastForwardFlops = 0.0
    private var input: Tensor?
    private var output: Tensor?
    private var inputGrad: Tensor?
    private var geometry: ConvGeometry?

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

    public func outputShape(_ inShape: [Int]) -> [Int] {
        let g = geometryFor(inShape)
        return [inShape[0], g.oh, g.ow, outChannels]
    }

    private func geometryFor(_ s: [Int]) -> ConvGeometry {
        precondition(s.count == 4 && s[3] == inChannels, "\(weight.name): expected NHWC input with \(inChannels) channels, got \(s)")
        return ConvGeometry(h: s[1], w: s[2], c: s[3], kh: kernel, kw: kernel, stride: stride, pad: padding)
    }

    /// Images per GEMM, so that the patch matrix stays within the shared workspace budget.
    private func imagesPerChunk(_ g: ConvGeometry, batch: Int) -> Int {
        if g.isPointwise { return batch }
        let perImage = g.oh * g.ow * g.patch
        return max(1, min(batch, Workspace.budget / perImage))
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let g = geometryFor(x.shape)
        geometry = g
        input = x
        let n = x.n
        lastForwardFlops = 2 * Double(n * g.oh * g.ow) * Double(outChannels * g.patch)
        let y = ensure(&output, [n, g.oh, g.ow, outChannels])
        let rowsPerImage = g.oh * g.ow
        let chunk = imagesPerChunk(g, batch: n)
        var n0 = 0
        while n0 < n {
            let images = min(chunk, n - n0)
            let rows = images * rowsPerImage
            let a: UnsafePointer<Float>
            if g.isPointwise {
                a = UnsafePointer(x.data + n0 * rowsPerImage * inChannels)
            } else {
                let col = Workspace.shared.buffer(rows * g.patch)
                im2col(x.data + n0 * g.h * g.w * g.c, images: images, g, col: col)
                a = UnsafePointer(col)
            }
            sgemm(transB: true, m: rows, n: outChannels, k: g.patch, a: a, lda: g.patch,
                  b: weight.value.data, ldb: g.patch, c: y.data + n0 * rowsPerImage * outChannels, ldc: outChannels)
            n0 += images
        }
        if let bias {
            let b = bias.value.data, cout = outChannels
            let yp = y.data
            Parallel.ranges(n * rowsPerImage, minPerTask: 1024) { rows in
                for r in rows { let row = yp + r * cout; for c in 0..<cout { row[c] += b[c] } }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor? {
        guard let x = input, let g = geometry else { fatalError("\(weight.name): backward before forward") }
        let n = x.n
        let rowsPerImage = g.oh * g.ow
        let chunk = imagesPerChunk(g, batch: n)
        let dx: Tensor? = needsInputGradient ? ensure(&inputGrad, x.shape) : nil
        var n0 = 0
        while n0 < n {
            let images = min(chunk, n - n0)
            let rows = images * rowsPerImage
            let dyChunk = dy.data + n0 * rowsPerImage * outChannels
            // dW += dyᵀ · col
            let a: UnsafePointer<Float>
            if g.isPointwise {
                a = UnsafePointer(x.data + n0 * rowsPerImage * inChannels)
            } else {
                let col = Workspace.shared.buffer(rows * g.patch)
                im2col(x.data + n0 * g.h * g.w * g.c, images: images, g, col: col)
                a = UnsafePointer(col)
            }
            sgemm(transA: true, m: outChannels, n: g.patch, k: rows, a: dyChunk, lda: outChannels,
                  b: a, ldb: g.patch, beta: 1, c: weight.grad.data, ldc: g.patch)
            if let dx {
                // dcol = dy · W, then scattered back to pixels.
                let dxChunk = dx.data + n0 * g.h * g.w * g.c
                if g.isPointwise {
                    sgemm(m: rows, n: g.patch, k: outChannels, a: dyChunk, lda: outChannels,
                          b: weight.value.data, ldb: g.patch, c: dxChunk, ldc: g.patch)
                } else {
                    let dcol = Workspace.shared.buffer(rows * g.patch)
                    sgemm(m: rows, n: g.patch, k: outChannels, a: dyChunk, lda: outChannels,
                          b: weight.value.data, ldb: g.patch, c: dcol, ldc: g.patch)
                    col2im(dcol, images: images, g, dx: dxChunk)
                }
            }
            n0 += images
        }
        if let bias {
            let sums = ChannelReduce.sum(rows: n * rowsPerImage, width: outChannels) { rows, p in
                for r in rows { let row = dy.data + r * outChannels; for c in 0..<outChannels { p[c] += row[c] } }
            }
            for c in 0..<outChannels { bias.grad.data[c] += Float(sums[c]) }
        }
        return dx
    }
}

/// The scratch buffer that im2col writes into, shared by every convolution of the process: only one
/// convolution runs at a time, and the patch matrix is dead as soon as its GEMM returns.
public final class Workspace: @unchecked Sendable {
    /// Floats of patch matrix per GEMM (32 MiB): large enough for GEMMs of thousands of rows, small
    /// enough that a 224-px ResNet-50 does not need gigabytes of scratch.
    nonisolated(unsafe) public static var budget = Int(ProcessInfo.processInfo.environment["RMTRAIN_CONV_WORKSPACE"] ?? "") ?? (8 << 20)
    public static let shared = Workspace()
    private var storage: Tensor?

    public func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        ensure(&storage, [count]).data
    }
}
