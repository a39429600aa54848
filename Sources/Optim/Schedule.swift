import Foundation

/// Learning rate as a function of the global iteration, updated every step.
/// Warmup is linear from lr/warmupIters up to lr over the first `warmupIterations`; after it, cosine decays
/// to 0 at the last iteration, or the step schedule multiplies by `decay` at each milestone epoch.
public struct LRSchedule: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case cosine, step }

    public var kind: Kind
    public var baseLR: Double
    public var warmupIterations: Int
    public var totalIterations: Int
    public var iterationsPerEpoch: Int
    public var milestones: [Int]          // epochs, for .step
    public var decay: Double

    public init(kind: Kind, baseLR: Double, warmupIterations: Int, totalIterations: Int,
                iterationsPerEpoch: Int, milestones: [Int] = [], decay: Double = 0.1) {
        self.kind = kind
        self.baseLR = baseLR
        self.warmupIterations = warmupIterations
        self.totalIterations = totalIterations
        self.iterationsPerEpoch = max(1, iterationsPerEpoch)
        self.milestones = milestones
        self.decay = decay
    }

    /// lr at 0-based iteration `it`.
    public func lr(at it: Int) -> Double {
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

    /// The linear scaling rule: base_lr × global_batch / 256.
    public static func scaled(_ lr: Double, globalBatch: Int) -> Double { lr * Double(globalBatch) / 256 }
}
