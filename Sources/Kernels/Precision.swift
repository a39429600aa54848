import Foundation

/// `--precision`: the arithmetic of the convolutions and linear layers (Lightning's names).
///
/// * `fp32`: float32 everywhere (the default).
/// * `bf16-mixed`: convolutions and linear layers multiply bfloat16 copies of their inputs, weights and
///   output gradients (rounded to nearest even), accumulating and writing float32; BatchNorm, the losses,
///   softmax, the RecursiveMix consistency term and history, and SGD's master weights stay float32 — what
///   `torch.autocast("cpu", dtype=torch.bfloat16)` does to the same layers (the authors' `autocast()`,
///   main.py:202), except that our layers' outputs stay float32.
public enum Precision: String, Sendable, CaseIterable {
    case fp32, bf16Mixed = "bf16-mixed"

    /// Why this CPU cannot run `self` at the speed it is for, or nil when it can. bf16-mixed needs the
    /// AVX512-BF16 dot-product instructions (Intel Cooper Lake, Sapphire Rapids and later; AMD Zen 4 and
    /// later), which oneDNN must also be allowed to use (`DNNL_MAX_CPU_ISA`).
    public var unsupportedReason: String? {
        guard self == .bf16Mixed else { return nil }
        if !Hardware.hasBF16 {
            return "this CPU (\(Hardware.cpuModel)) has no AVX512-BF16 instructions (vector ISA \(Hardware.vectorISA))"
        }
        if !Hardware.onednnISA.hasPrefix("avx512_core_bf16") && !Hardware.onednnISA.hasPrefix("avx512_core_amx") {
            return "oneDNN may use up to \(Hardware.onednnISA) here, not avx512_core_bf16 (DNNL_MAX_CPU_ISA caps it)"
        }
        if let v = ProcessInfo.processInfo.environment["RMTRAIN_BF16_KERNELS"], !BF16Kernels.settings.contains(v) {
            return "RMTRAIN_BF16_KERNELS=\(v) is not one of \(BF16Kernels.settings.joined(separator: ", "))"
        }
        return nil
    }

    /// Whether bf16-mixed's convolutions and classifier multiply in bfloat16 here, or in float32 (Winograd
    /// where it wins). `RMTRAIN_BF16_KERNELS=on|off` decides; unset (`auto`), this machine does: bfloat16
    /// where oneDNN may use AMX (its bf16 tile multiplies are many times the FMA rate) or where the core's
    /// AVX512-BF16 dot products run at ≥ 1.5× its float32 FMA rate (AMD Zen 4, whose bf16 convolutions ran
    /// at ~2× fp32 direct: PLATFORM_NOTES), float32 where they do not (Intel cores without AMX: 0.5×, where
    /// oneDNN's bf16 convolutions run at 0.55× float32 direct and 0.25× Winograd, and PyTorch's autocast at
    /// 0.8–1.1× its fp32: README, "Mixed precision"). Below 1.5×, bf16 direct would win only on layers
    /// without Winograd, by less than its reorders cost. The two classes are 4× apart and the rates are a
    /// best-of-7 from register-only loops, so the choice does not flip between runs on one machine
    /// (determinism); it is printed at the start of every run.
    /// Tests may set it (the bf16 kernels are tested wherever the CPU has them, whatever `auto` picks).
    nonisolated(unsafe) public static var bf16Kernels =
        BF16Kernels.choose(setting: ProcessInfo.processInfo.environment["RMTRAIN_BF16_KERNELS"], rates: Hardware.dotRates,
                           amx: Hardware.onednnISA.hasPrefix("avx512_core_amx"))

    /// What `--precision` runs on this machine, for the start line: "fp32", or bf16-mixed's kernel choice.
    public var kernelsDescription: String {
        guard self == .bf16Mixed else { return "fp32" }
        let k = Precision.bf16Kernels
        return k.runs ? "bf16-mixed: convolutions and the classifier multiply in bfloat16 (\(k.reason))"
            : "bf16-mixed: convolutions and the classifier multiply in float32 here, as fast as fp32 and as exact (\(k.reason)); "
              + "bfloat16 pays on CPUs whose bf16 rate is ≥ 1.5× (AMD Zen 4) or with AMX"
    }
}

/// bf16-mixed's kernel choice on this machine (`Precision.bf16Kernels`).
public struct BF16Kernels: Sendable {
    /// Whether convolutions and the classifier multiply in bfloat16.
    public let runs: Bool
    /// Why, in words: the override, or the measured rates.
    public let reason: String

    public init(runs: Bool, reason: String) { (self.runs, self.reason) = (runs, reason) }

    /// The RMTRAIN_BF16_KERNELS values.
    public static let settings = ["auto", "on", "off"]

    /// The rule of `Precision.bf16Kernels`: `setting` is RMTRAIN_BF16_KERNELS (on, off, or nil / auto; any
    /// other value is refused by `Precision.unsupportedReason`), `rates` one core's float32 FMA and bf16
    /// dot-product GFLOP/s (nil: no AVX512-BF16), `amx` whether oneDNN may use AMX.
    public static func choose(setting: String?, rates: (fp32: Double, bf16: Double)?, amx: Bool) -> BF16Kernels {
        switch setting ?? "auto" {
        case "on": return BF16Kernels(runs: true, reason: "RMTRAIN_BF16_KERNELS=on")
        case "off": return BF16Kernels(runs: false, reason: "RMTRAIN_BF16_KERNELS=off")
        default:
            if amx { return BF16Kernels(runs: true, reason: "oneDNN runs them on AMX here") }
            guard let r = rates, r.fp32 > 0 else { return BF16Kernels(runs: false, reason: "no AVX512-BF16") }
            let ratio = r.bf16 / r.fp32
            let text = String(format: "this core's bf16 dot products run at %.2f× its fp32 FMA rate (%.0f vs %.0f GFLOP/s)",
                              ratio, r.bf16, r.fp32)
            return BF16Kernels(runs: ratio >= 1.5, reason: text)
        }
    }
}
