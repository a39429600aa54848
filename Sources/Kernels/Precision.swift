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
        return nil
    }
}
