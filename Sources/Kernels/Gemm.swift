import COpenBLAS

/// Row-major single-precision GEMM through OpenBLAS: C = alpha·op(A)·op(B) + beta·C.
/// A is M×K after op, B is K×N after op, C is M×N; leading dimensions are the row strides as stored.
@inline(__always)
public func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

public enum BLAS {
    /// Sets the threads of a training process: our own loops run on `n` threads, and OpenBLAS runs
    /// single-threaded inside them (convolutions split work by images, see Conv2d). One thread per core
    /// either way, never n × n.
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(1)
        Parallel.setThreads(n)
    }

    /// OpenBLAS's own thread count, for measuring its multi-threaded sgemm peak.
    public static func setBLASThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
