import CConv
import Foundation

/// One convolution shape (batch included) run by oneDNN, the library PyTorch's CPU convolutions use:
/// NHWC activations, OHWI weights ([Cout, kh, kw, Cin], our layout), float32. The primitives are created
/// once per shape; oneDNN picks its kernel by CPU (AVX-512, AVX2, SSE4.1) and shape, and `implementation`
/// names it. Thread count: `BLAS.setThreads` sets oneDNN's OpenMP threads to the rank's threads.
///
/// Two algorithms: direct convolution on NHWC, or Winograd F(4,3) (`winograd: true`, 3×3 stride 1 only),
/// which needs 4× fewer multiplications and runs on oneDNN's blocked layout, reordered from and to NHWC
/// inside each call (`usesWinograd` says where it is chosen and why).
///
/// Determinism: for a fixed thread count oneDNN's results are bitwise repeatable; the weight gradient's
/// summation order depends on the thread count (unlike the portable path), see README "Determinism".
public final class OneDNNConvolution {
    private let handle: OpaquePointer
    public let geometry: ConvGeometry
    public let batch: Int, outChannels: Int
    /// The multiplications' precision: `.bf16Mixed` multiplies bfloat16 copies of x, the weights and dy
    /// (direct convolution only), accumulating and writing float32.
    public let precision: Precision

    /// Throws `Failure` when oneDNN cannot build this shape (the caller keeps its portable path).
    public init(batch: Int, _ g: ConvGeometry, outChannels: Int, winograd: Bool = false, precision: Precision = .fp32) throws {
        precondition(g.kh == g.kw, "square kernels only")
        var error = [CChar](repeating: 0, count: 200)
        guard let h = rm_conv_create(Int32(batch), Int32(g.h), Int32(g.w), Int32(g.c), Int32(outChannels),
                                     Int32(g.kh), Int32(g.stride), Int32(g.pad), winograd ? 1 : 0,
                                     precision == .bf16Mixed ? 1 : 0, &error, Int32(error.count)) else {
            throw Failure(message: String(cString: error))
        }
        handle = h
        geometry = g
        self.batch = batch
        self.outChannels = outChannels
        self.precision = precision
    }

    deinit { rm_conv_destroy(handle) }

    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// y[n, oh, ow, Cout] = conv(x[n, h, w, Cin], w).
    public func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        check(rm_conv_forward(handle, x, weight, y), "forward")
    }

    /// dw[Cout, kh, kw, Cin] (overwritten): the batch's weight gradient; then, when `dx` is given,
    /// dx[n, h, w, Cin] (overwritten) from dy[n, oh, ow, Cout].
    public func backward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>) {
        check(rm_conv_backward(handle, x, dy, weight, dx, dw), "backward")
    }

    /// Where Winograd is chosen: 3×3 stride 1 with both channel counts multiples of 16 (its blocking) and at
    /// least 32. Measured on this project's shapes (AVX-512, 1 and 2 threads, forward + both backward passes
    /// including the layout reorders; README, Benchmarks): 1.1× faster than direct NHWC at 32 channels,
    /// 1.6–2.2× at 64–512; slower at 16 channels (the reorders cost more than the multiplications saved).
    /// A fixed rule, never a timing, so that the same run always picks the same kernels (determinism).
    public static func usesWinograd(_ g: ConvGeometry, outChannels: Int) -> Bool {
        g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad == 1 && g.c % 16 == 0 && outChannels % 16 == 0
            && min(g.c, outChannels) >= 32
    }

    /// oneDNN's kernel names for forward, backward data and backward weights, e.g. "brgconv:avx512_core".
    public var implementation: (forward: String, backwardData: String, backwardWeights: String) {
        (String(cString: rm_conv_impl(handle, 0)), String(cString: rm_conv_impl(handle, 1)),
         String(cString: rm_conv_impl(handle, 2)))
    }

    public static var version: String { String(cString: rm_conv_version()) }
    static func setThreads(_ n: Int) { rm_conv_set_threads(Int32(n)) }

    /// A failed execution after the primitives were built is a broken library or memory: not recoverable.
    private func check(_ status: Int32, _ what: String) {
        if status != 0 { fatalError("oneDNN convolution \(what) failed with status \(status) for \(geometry)") }
    }
}

/// Which convolution kernels run: oneDNN with Winograd where it wins (default), oneDNN direct only
/// (`RMTRAIN_CONV=onednn-direct`), or the portable im2col + OpenBLAS path (`RMTRAIN_CONV=portable`), for
/// debugging or on a machine without oneDNN's supported ISA.
public enum ConvBackend: String, Sendable {
    case onednn, onednnDirect = "onednn-direct", portable

    nonisolated(unsafe) public static var current: ConvBackend =
        ConvBackend(rawValue: ProcessInfo.processInfo.environment["RMTRAIN_CONV"] ?? "") ?? .onednn
}
