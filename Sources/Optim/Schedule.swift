import Foundation

/// Learning rate as a function of the global iteration.
///
/// Set on `updates` (every step, the default): warm-up is linear from lr/warmupIterations up to lr over the
/// first `warmupIterations`; after it, cosine decays to 0 at the last iteration, or the step schedule
/// multiplies by `decay` at each milestone epoch.
///
/// Set on `epochs` (timm's scheduling on epochs, `--sched-on-updates` off): the lr is set once at each epoch's
/// start from the 1-based epoch e, as the RecursiveMix code's `adjust_learning_rate` (utils.py:177-196, called
/// once per epoch at main.py:196 with main.py:171's 1-based epoch): `base × e/(w+1)` for e ≤ w (utils.py:180-181),
/// then `base × decay^(milestones below e)` (utils.py:182-187) or `base × 0.5(1 + cos((e−1)π/E))`
/// (utils.py:188-190), the cosine not shifted by the warm-up. w and E are whole epochs: `warmupIterations` and
/// `totalIterations` over `iterationsPerEpoch`.
public struct LRSchedule: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case cosine, step }
    /// When the lr changes: every optimizer update, or once per epoch (timm's `sched_on_updates`).
    public enum SteppedOn: String, Sendable, CaseIterable { case updates, epochs }

    public var kind: Kind
    public var on: SteppedOn
    public var baseLR: Double
    public var warmupIterations: Int
    public var totalIterations: Int
    public var iterationsPerEpoch: Int
    public var milestones: [Int]          // epochs, for .step
    public var decay: Double

    public init(kind: Kind, on: SteppedOn = .updates, baseLR: Double, warmupIterations: Int, totalIterations: Int,
                iterationsPerEpoch: Int, milestones: [Int] = [], decay: Double = 0.1) {
        self.kind = kind
        self.on = on
        self.baseLR = baseLR
        self.warmupIterations = warmupIterations
        self.totalIterations = totalIterations
        self.iterationsPerEpoch = max(1, iterationsPerEpoch)
        self.milestones = milestones
        self.decay = decay
    }

    /// lr at 0-based iteration `it` (on epochs: the lr of the epoch it falls in, so a run resumed in the middle
    /// of an epoch continues at that epoch's lr).
    public func lr(at it: Int) -> Double {
        if on == .epochs { return lr(epoch: it / iterationsPerEpoch + 1) }
        if it < warmupIterations { return baseLR * Double(it + 1) / Double(warmupIterations) }
        switch kind {
        case .cosine:
            let span = max(1, totalIterations - warmupIterations)
            let t = Double(min(it - warmupIterations, span)) / Double(span)
            return baseLR * 0.5 * (1 + cos(Double.pi * t))
        case .step:
            let epoch = it / iterationsPerEpoch          // 0-based
            let passed = milestones.filter { epoch >= $0 }.count
            return baseLR * pow(decay, Double(passed))
        }
    }

    /// The RecursiveMix code's lr of 1-based epoch `e` (utils.py:177-196), whatever `on` says.
    public func lr(epoch e: Int) -> Double {
        let w = warmupIterations / iterationsPerEpoch, epochs = max(1, totalIterations / iterationsPerEpoch)
        if e <= w { return baseLR * Double(e) / Double(w + 1) }
        switch kind {
        case .step:
            return baseLR * pow(decay, Double(milestones.filter { e > $0 }.count))
        case .cosine:
            return baseLR * 0.5 * (1 + cos(Double(e - 1) * Double.pi / Double(epochs)))
        }
    }

    /// The linear scaling rule: base_lr × global_batch / 256.
    public static func scaled(_ lr: Double, globalBatch: Int) -> Double { lr * Double(globalBatch) / 256 }
}
