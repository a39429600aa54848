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

/// C = op(bf16(A))·op(bf16(B)) + beta·C: A and B rounded to bfloat16 (`BFloat16`, nearest even), multiplied
/// and accumulated in float32 (bf16-mixed's linear layers). The product of two bfloat16 values is exact in
/// float32, so this is a bf16 dot product with float32 accumulation, run by sgemm: Debian's OpenBLAS 0.3.21
/// declares `cblas_sbgemm` but is built without it (`nm -D libopenblas.so` lists no sbgemm), and a
/// classifier's multiply is < 0.1 % of a CNN's step, so its speed does not matter. Arguments as `sgemm`.
public func bf16gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    // Stored rows: op(A) is m×k, so A holds k rows when transposed; likewise B.
    let countA = (transA ? k : m) * lda, countB = (transB ? n : k) * ldb
    // A linear layer's operands are small (a batch × features): scratch per call costs less than keeping it.
    let ra = UnsafeMutablePointer<Float>.allocate(capacity: countA)
    let rb = UnsafeMutablePointer<Float>.allocate(capacity: countB)
    defer { ra.deallocate(); rb.deallocate() }
    for i in 0..<countA { ra[i] = BFloat16.rounded(a[i]) }
    for i in 0..<countB { rb[i] = BFloat16.rounded(b[i]) }
    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: ra, lda: lda, b: rb, ldb: ldb, beta: beta, c: c, ldc: ldc)
}

public enum BLAS {
    /// Sets the threads of a training process: our own loops run on `n` threads, and OpenBLAS runs
    /// single-threaded inside them (convolutions split work by images, see Conv2d). One thread per core
    /// either way, never n × n.
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(1)
        Parallel.setThreads(n)
        OneDNNConvolution.setThreads(max(1, n))
    }

    /// OpenBLAS's own thread count, for measuring its multi-threaded sgemm peak.
    public static func setBLASThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var threads: Int { Int(openblas_get_num_threads()) }
}

/// OpenBLAS picks its kernels by CPU model when it loads. A model it does not know (a virtual machine's
/// generic "Intel Xeon Processor", a CPU newer than the library) falls back to `Prescott`, SSE3 kernels
/// that run sgemm 3–9× below the CPU's peak: measured here (Debian's OpenBLAS 0.3.21 on an AVX-512 Xeon
/// VM), 23 vs 219 GFLOP/s on 2 threads, and ResNet-20 training at 82 vs 235 img/s. The choice is made in
/// the library's constructor, before `main`, so the only remedy is the environment variable
/// `OPENBLAS_CORETYPE` at process start: `rmtrain` re-executes itself once with it (`RMTrain.main`).
public enum BLASCore {
    /// The kernel set OpenBLAS is using, e.g. "SkylakeX", "Haswell", "Prescott".
    public static var name: String { String(cString: openblas_get_corename()) }

    /// Kernel sets that use neither AVX2 nor AVX-512 (OpenBLAS's names, lower-cased).
    static let legacy: Set<String> = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom",
                                      "katmai", "coppermine", "northwood", "banias", "sandybridge", "unknown"]

    /// The `OPENBLAS_CORETYPE` to re-run with, or nil when OpenBLAS already uses the CPU's vector width
    /// (or the user set `OPENBLAS_CORETYPE`: their choice is kept).
    public static func betterCoreType(environment: [String: String]) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil, legacy.contains(name.lowercased()) else { return nil }
        switch rmtrain_cpu_vector_level() {
        case 2: return "SkylakeX"
        case 1: return "Haswell"
        default: return nil
        }
    }
}
