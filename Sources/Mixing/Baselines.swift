import Kernels

/// Mixup / CutMix parameters with timm's names and `Mixup.__init__` defaults (§10.3), for the baselines
/// run on the RM recipe (§4.4 option 1). The reference RM repo cannot run its own helpers; timm's 'batch'
/// mode is the well-defined protocol to compare against.
public struct MixPolicy: Equatable, Sendable {
    public var mixupAlpha: Double
    public var cutmixAlpha: Double
    /// CutMix side-ratio range; when set, boxes come from `BoxSampler.cutMixMinMax` and timm forces
    /// `cutmixAlpha = 1` (the Beta draw still happens: it decides nothing but keeps the stream aligned).
    public var cutmixMinMax: ClosedRange<Double>?
    /// Probability of mixing a batch at all.
    public var prob: Double
    /// Probability of CutMix rather than Mixup when both alphas are > 0.
    public var switchProb: Double
    /// CutMix's λ from the clipped box area (always so with min/max).
    public var correctLam: Bool
    public var labelSmoothing: Double
    public var smoothingStyle: SmoothingStyle

    public init(mixupAlpha: Double = 1.0, cutmixAlpha: Double = 0.0, cutmixMinMax: ClosedRange<Double>? = nil,
                prob: Double = 1.0, switchProb: Double = 0.5, correctLam: Bool = true,
                labelSmoothing: Double = 0.1, smoothingStyle: SmoothingStyle = .timm) {
        self.mixupAlpha = mixupAlpha
        self.cutmixAlpha = cutmixMinMax == nil ? cutmixAlpha : 1.0    // timm `mixup.py:109-112`
        self.cutmixMinMax = cutmixMinMax
        self.prob = prob
        self.switchProb = switchProb
        self.correctLam = correctLam
        self.labelSmoothing = labelSmoothing
        self.smoothingStyle = smoothingStyle
        precondition(mixupAlpha > 0 || self.cutmixAlpha > 0, "one of mixupAlpha, cutmixAlpha, cutmixMinMax must be set")
    }
}

public enum MixKind: String, Sendable { case none, mixup, cutmix }

/// What one batch gets: the kind and the λ drawn from Beta (before any CutMix area correction).
public struct MixDecision: Equatable, Sendable {
    public var kind: MixKind
    public var lam: Double
}

/// What was done to a batch: λ is the final weight of the batch's own images and labels (CutMix's is
/// area-corrected), `box` the CutMix region (nil for Mixup and for an unmixed batch).
public struct MixOutcome: Equatable, Sendable {
    public var kind: MixKind
    public var lam: Double
    public var box: Box?
}

extension MixPolicy {
    /// timm `_params_per_batch` (§10.4), same draw order: u < prob decides mixing; if both alphas are > 0,
    /// u < switchProb picks CutMix; then one λ ~ Beta(α, α) of the chosen kind. Otherwise λ = 1, no mix.
    public func decide(rng: inout RandomStream) -> MixDecision {
        guard rng.uniform() < prob else { return MixDecision(kind: .none, lam: 1) }
        if mixupAlpha > 0 && cutmixAlpha > 0 {
            let useCutmix = rng.uniform() < switchProb
            let lam = BoxSampler.betaSample(alpha: useCutmix ? cutmixAlpha : mixupAlpha, rng: &rng)
            return MixDecision(kind: useCutmix ? .cutmix : .mixup, lam: lam)
        }
        if mixupAlpha > 0 { return MixDecision(kind: .mixup, lam: BoxSampler.betaSample(alpha: mixupAlpha, rng: &rng)) }
        return MixDecision(kind: .cutmix, lam: BoxSampler.betaSample(alpha: cutmixAlpha, rng: &rng))
    }
}

/// timm's batch-mode Mixup/CutMix (`_mix_batch` + `mixup_target`, §10.4), in place on an NHWC batch.
/// The partner of sample i is sample B−1−i of the ORIGINAL batch (`x.flip(0)`).
///
/// No clone is needed: the update is done pair by pair, (i, B−1−i), reading both original values before
/// writing either, which is exactly "mix with the flipped clone" without the clone's memory or copy.
/// For odd B the middle sample is its own partner (Mixup leaves it as lam·x + (1−lam)·x; CutMix no-op).
public enum BaselineMix {
    /// x = lam·x + (1−lam)·x.flip(0), in float32 as `x.mul_(lam).add_(x_flipped.mul_(1 − lam))`.
    public static func mixup(_ x: Tensor, lam: Double) {
        let b = x.shape[0], per = x.count / b
        let l = Float(lam), m = Float(1 - lam)
        let p = x.data
        Parallel.forEach((b + 1) / 2) { i in
            let j = b - 1 - i
            let a = p + i * per, c = p + j * per
            if i == j {
                for e in 0..<per { a[e] = a[e] * l + a[e] * m }
            } else {
                for e in 0..<per {
                    let u = a[e], v = c[e]
                    a[e] = u * l + v * m
                    c[e] = v * l + u * m
                }
            }
        }
    }

    /// x[:, y1:y2, x1:x2, :] = x.flip(0)[:, y1:y2, x1:x2, :]: swapping the box region within each pair.
    public static func cutmix(_ x: Tensor, box: Box) {
        precondition(x.shape.count == 4, "cutmix expects NHWC")
        precondition(box.x1 >= 0 && box.y1 >= 0 && box.x2 <= x.w && box.y2 <= x.h, "box \(box) outside the image")
        let b = x.n, h = x.h, w = x.w, c = x.c
        let bw = box.width
        if box.height <= 0 || bw <= 0 { return }
        let p = x.data
        Parallel.forEach(b / 2) { i in
            let j = b - 1 - i
            for r in box.y1..<box.y2 {
                let a = p + ((i * h + r) * w + box.x1) * c, d = p + ((j * h + r) * w + box.x1) * c
                for e in 0..<(bw * c) { let t = a[e]; a[e] = d[e]; d[e] = t }
            }
        }
    }
}

/// One training batch through a `MixPolicy`: decides, mixes the images in place, writes the soft targets.
public final class BatchMixer {
    public let policy: MixPolicy
    public init(policy: MixPolicy) { self.policy = policy }

    /// Mixes `images` ([B, H, W, C], in place) and writes `targets` ([B, K]). Draws: the decision (§10.4),
    /// then for CutMix the box (cy, cx — or the min/max draws). An unmixed batch gets smoothed one-hots.
    public func apply(images: Tensor, labels: [Int], classes k: Int, targets: Tensor,
                      rng: inout RandomStream) -> MixOutcome {
        precondition(images.n == labels.count, "\(images.n) images, \(labels.count) labels")
        let d = policy.decide(rng: &rng)
        var outcome = MixOutcome(kind: d.kind, lam: d.lam, box: nil)
        switch d.kind {
        case .none:
            break
        case .mixup:
            if d.lam == 1 { outcome.kind = .none; break }     // timm: `if lam == 1.: return 1.`
            BaselineMix.mixup(images, lam: d.lam)
        case .cutmix:
            if d.lam == 1 { outcome.kind = .none; break }
            let (box, lam): (Box, Double)
            if let mm = policy.cutmixMinMax {
                (box, lam) = BoxSampler.cutMixMinMax(width: images.w, height: images.h,
                                                     minRatio: mm.lowerBound, maxRatio: mm.upperBound, rng: &rng)
            } else {
                (box, lam) = BoxSampler.cutMix(width: images.w, height: images.h, lam: d.lam,
                                               correctLam: policy.correctLam, rng: &rng)
            }
            BaselineMix.cutmix(images, box: box)
            outcome.lam = lam
            outcome.box = box
        }
        Targets.mixWithReversed(labels: labels, classes: k, smoothing: policy.labelSmoothing,
                                style: policy.smoothingStyle, lam: outcome.lam, into: targets)
        return outcome
    }
}

/// Mixup, CutMix, or timm's switch between them, as a `MixingMethod`: no parameters, no memory between
/// steps; the same draws on every rank (timm's batch mode on each rank's batch).
public final class BatchMixMethod: MixingMethod {
    public let name: String
    public let mixer: BatchMixer
    public var statistics = MixStatistics()
    private let classes: Int, seed: UInt64

    /// `name` is the `--mix` value it stands for.
    public init(name: String, policy: MixPolicy, classes: Int, seed: UInt64) {
        (self.name, self.classes, self.seed) = (name, classes, seed)
        mixer = BatchMixer(policy: policy)
    }

    public func startEpoch() { statistics = MixStatistics() }

    public func mix(images: Tensor, labels: [Int], targets: Tensor, step: Int) -> MixRecord {
        var rng = stepStream(seed: seed, step: step)
        let o = mixer.apply(images: images, labels: labels, classes: classes, targets: targets, rng: &rng)
        let record = MixRecord(kind: o.kind.rawValue, lam: o.lam, box: o.box)
        statistics.count(targets: targets, rows: labels.count, classes: classes, record: record)
        return record
    }
}
