import CConv
import Foundation

/// One convolution shape (batch included) run by oneDNN, the library PyTorch's CPU convolutions use:
/// NHWC activations, OHWI weights ([Cout, kh, kw, Cin], our layout), float32. The primitives are created
/// once per shape; oneDNN picks its kernel by CPU (AVX-512, AVX2, SSE4.1) and shape, and `implementation`
/// names it. Thread count: `BLAS.setThreads` sets oneDNN's OpenMP threads to the rank's threads.
///
/// Determinism: for a fixed thread count oneDNN's results are bitwise repeatable; the weight gradient's
/// summation order depends on the thread count (unlike the portable path), see README "Determinism".
public final class OneDNNConvolution {
    private let handle: OpaquePointer
    public let geometry: ConvGeometry
    public let batch: Int, outChannels: Int

    /// Throws `Failure` when oneDNN cannot build this shape (the caller keeps its portable path).
    public init(batch: Int, _ g: ConvGeometry, outChannels: Int) throws {
        precondition(g.kh == g.kw, "square kernels only")
        var error = [CChar](repeating: 0, count: 200)
        guard let h = rm_conv_create(Int32(batch), Int32(g.h), Int32(g.w), Int32(g.c), Int32(outChannels),
                                     Int32(g.kh), Int32(g.stride), Int32(g.pad), &error, Int32(error.count)) else {
            throw Failure(message: String(cString: error))
        }
        handle = h
        geometry = g
        self.batch = batch
        self.outChannels = outChannels
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

    /// dx[n, h, w, Cin] (overwritten) from dy[n, oh, ow, Cout].
    public func backwardData(dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>) {
        check(rm_conv_backward_data(handle, dy, weight, dx), "backward data")
    }

    /// dw[Cout, kh, kw, Cin] (overwritten): the batch's weight gradient.
    public func backwardWeights(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dw: UnsafeMutablePointer<Float>) {
        check(rm_conv_backward_weights(handle, x, dy, dw), "backward weights")
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

/// Which convolution kernels run: oneDNN (default) or the portable im2col + OpenBLAS path, forced with
/// `RMTRAIN_CONV=portable` for debugging or on a machine without oneDNN's supported ISA.
public enum ConvBackend: String, Sendable {
    case onednn, portable

    nonisolated(unsafe) public static var current: ConvBackend =
        ConvBackend(rawValue: ProcessInfo.processInfo.environment["RMTRAIN_CONV"] ?? "") ?? .onednn
}
