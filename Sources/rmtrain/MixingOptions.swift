import ArgumentParser
import Mixing
import Training

/// The mixing flags of `rmtrain train`. Where the paper and the authors' code differ, the default is the
/// code's and the help says so.
struct MixingOptions: ParsableArguments {
    @Option(help: "Mixing: none, mixup, cutmix, mixup+cutmix (timm conventions), rm (RecursiveMix).")
    var mix: MixMethod = .none

    @Option(parsing: .unconditional,
            help: "RM: historical area u ~ U[0, α] per batch; λ is recomputed from the clipped box (code: 0.5).")
    var rmAlpha = 0.5

    @Option(parsing: .unconditional,
            help: "RM: weight ω of the consistency loss ω·(1−λ)·CE(H′(RoI), softmax(p_hist)) (code default 0.5; CIFAR recipe 0.1). The paper calls it KL; the code's soft CE has the same gradient.")
    var rmOmega = 0.5

    @Option(help: "RM: history resize, nearest (PyTorch's legacy rule, the code's default) or bilinear (align_corners).")
    var rmInterp: InterpolationMode = .nearest

    @Option(help: "RM: per-epoch (reset each epoch, as the code does) or persistent (kept across epochs).")
    var rmHistory: HistoryMode = .perEpoch

    @Flag(help: "RM: the consistency head reuses the classifier fc (code: separate fc_roi).")
    var rmShareHead = false

    @Flag(name: .customLong("rm-legacy-transposed-roi"),
          help: "RM: reproduce the original release, whose pasted box was the transpose of the RoI (fixed upstream in 2023).")
    var rmLegacyTransposedRoI = false

    @Option(help: "RM: shared (every rank draws the same box and λ, as the code) or per-rank.")
    var rmBox: BoxDraw = .shared

    @Option(parsing: .unconditional, help: "Mixup: λ ~ Beta(α, α).")
    var mixupAlpha = 1.0

    @Option(parsing: .unconditional, help: "CutMix: λ ~ Beta(α, α), corrected to the clipped box.")
    var cutmixAlpha = 1.0

    @Option(name: .customLong("cutmix-minmax"), help: "CutMix: box side ratios MIN,MAX instead of Beta (timm's cutmix_minmax).")
    var cutmixMinMax: String?

    @Option(parsing: .unconditional, help: "Mixup/CutMix: probability of mixing a batch.")
    var mixProb = 1.0

    @Option(parsing: .unconditional, help: "mixup+cutmix: probability of CutMix.")
    var switchProb = 0.5

    @Option(parsing: .unconditional, help: "Label smoothing s.")
    var smoothing = 0.0

    @Option(help: "Smoothing off-value: timm (s/K) or rm (the RecursiveMix code's s/(K−1)).")
    var smoothingStyle: SmoothingStyle = .timm

    func validate() throws {
        try FlagCheck.number("--rm-alpha", rmAlpha, "in (0, 1] (the largest historical area fraction)") { $0 > 0 && $0 <= 1 }
        try FlagCheck.number("--rm-omega", rmOmega, "in [0, 1000]") { $0 >= 0 && $0 <= 1000 }
        try FlagCheck.number("--mixup-alpha", mixupAlpha, "in (0, 1000]") { $0 > 0 && $0 <= 1000 }
        try FlagCheck.number("--cutmix-alpha", cutmixAlpha, "in (0, 1000]") { $0 > 0 && $0 <= 1000 }
        try FlagCheck.number("--mix-prob", mixProb, "in [0, 1]") { (0...1).contains($0) }
        try FlagCheck.number("--switch-prob", switchProb, "in [0, 1]") { (0...1).contains($0) }
        try FlagCheck.number("--smoothing", smoothing, "in [0, 1)") { $0 >= 0 && $0 < 1 }
        _ = try parsedMinMax()
    }

    func parsedMinMax() throws -> ClosedRange<Double>? {
        guard let cutmixMinMax else { return nil }
        let parts = cutmixMinMax.split(separator: ",").compactMap { Double($0) }
        guard parts.count == 2, parts.allSatisfy(\.isFinite), parts[0] > 0, parts[0] < parts[1], parts[1] < 1 else {
            throw ValidationError("--cutmix-minmax must be MIN,MAX with 0 < MIN < MAX < 1, got '\(cutmixMinMax)'")
        }
        return parts[0]...parts[1]
    }

    func apply(to c: inout TrainConfig) throws {
        c.mix = mix
        c.rmAlpha = rmAlpha
        c.rmOmega = rmOmega
        c.rmInterpolation = rmInterp
        c.rmHistory = rmHistory
        c.rmShareHead = rmShareHead
        c.rmLegacyTransposedRoI = rmLegacyTransposedRoI
        c.rmBox = rmBox
        c.mixupAlpha = mixupAlpha
        c.cutmixAlpha = cutmixAlpha
        c.cutmixMinMax = try parsedMinMax()
        c.mixProb = mixProb
        c.switchProb = switchProb
        c.smoothing = smoothing
        c.smoothingStyle = smoothingStyle
    }
}
