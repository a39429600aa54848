import CConv
import COpenBLAS
import Foundation

/// What this process computes on: the CPU, its widest vector ISA, and the kernel sets OpenBLAS and oneDNN
/// chose for it. Results of the same float32 computation differ by kernel set (each sums in its own order),
/// and so does speed, so `rmtrain bench` and every run's start lines print it (issue #22), and every table
/// of figures names it.
public enum Hardware {
    /// `/proc/cpuinfo`'s "model name" (e.g. "AMD EPYC 9R14 96-Core Processor"), with the family and model
    /// numbers where the name is a hypervisor's generic one; "unknown CPU" off Linux.
    public static let cpuModel: String = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        var fields = [String: String]()
        for line in text.split(separator: "\n") {
            if line.isEmpty { break }        // the first processor's block is enough
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            fields[parts[0].trimmingCharacters(in: .whitespaces)] = parts[1].trimmingCharacters(in: .whitespaces)
        }
        let name = fields["model name"] ?? "unknown CPU"
        guard let family = fields["cpu family"], let model = fields["model"] else { return name }
        return "\(name) (family \(family), model \(model))"
    }()

    /// The widest x86 vector ISA the CPU runs: "AVX-512+BF16", "AVX-512", "AVX2" or "SSE" (or "none").
    public static var vectorISA: String {
        switch rmtrain_cpu_vector_level() {
        case 2: return hasBF16 ? "AVX-512+BF16" : "AVX-512"
        case 1: return "AVX2"
        default:
            #if arch(x86_64)
            return "SSE"
            #else
            return "none"
            #endif
        }
    }

    /// Whether the CPU has the AVX512-BF16 dot-product instructions.
    public static var hasBF16: Bool { rmtrain_cpu_has_avx512_bf16() == 1 }

    /// One core's peak float32 FMA and AVX512-BF16 dot-product rates in GFLOP/s (`rm_dot_rates`: register-only
    /// loops, best of 7 alternating rounds, ~4 ms once per process); nil without AVX512-BF16.
    public static let dotRates: (fp32: Double, bf16: Double)? = {
        var fp32 = 0.0, bf16 = 0.0
        return rm_dot_rates(&fp32, &bf16) == 0 ? (fp32, bf16) : nil
    }()

    /// OpenBLAS's kernel set, e.g. "SkylakeX" (set by `OPENBLAS_CORETYPE`, or chosen by OpenBLAS at load).
    public static var blasCore: String { BLASCore.name }

    /// The widest ISA oneDNN dispatches to, e.g. "avx512_core_bf16" (capped by `DNNL_MAX_CPU_ISA`).
    public static var onednnISA: String { String(cString: rm_conv_isa()) }

    /// One line: "CPU …, vector ISA …, OpenBLAS … kernels, oneDNN 2.6.3 up to …".
    public static var summary: String {
        "CPU \(cpuModel), vector ISA \(vectorISA), OpenBLAS \(blasCore) kernels, "
            + "oneDNN \(OneDNNConvolution.version) up to \(onednnISA)"
    }

    /// The same as key/value pairs, for `bench`'s machine-readable lines.
    public static var fields: [String: String] {
        var f = ["cpu": cpuModel, "vector_isa": vectorISA, "blas_core": blasCore, "onednn_isa": onednnISA,
                 "onednn": OneDNNConvolution.version]
        if let r = dotRates {
            f["core_fp32_fma_gflops"] = String(format: "%.1f", r.fp32)
            f["core_bf16_dot_gflops"] = String(format: "%.1f", r.bf16)
            f["bf16_convolutions"] = Precision.bf16Kernels.runs ? "bf16" : "fp32"
        }
        return f
    }
}
