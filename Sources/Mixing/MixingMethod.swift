import Kernels
import Layers

/// What mixing did to one step's batch (for the loss, the trace and the statistics).
public struct MixRecord: Equatable, Sendable {
    /// "none", "mixup", "cutmix" or "rm" (what the trace's `mix_kind` says).
    public var kind: String
    /// Weight of the batch's own images and labels (1 when nothing was mixed).
    public var lam: Double
    /// The region the loss looks at: CutMix's box, RecursiveMix's RoI box.
    public var box: Box?
    /// RecursiveMix: where the history was pasted (the RoI box but for the legacy transposed variant).
    public var pasteBox: Box?
    public var mixed: Bool { lam < 1 }

    public init(kind: String = "none", lam: Double = 1, box: Box? = nil, pasteBox: Box? = nil) {
        (self.kind, self.lam, self.box, self.pasteBox) = (kind, lam, box, pasteBox)
    }
}

/// An auxiliary loss term a method adds to the cross-entropy: `weight · value`.
public struct AuxiliaryLoss: Equatable, Sendable {
    /// Unweighted value (RecursiveMix: the consistency cross-entropy).
    public var value: Double
    public var weight: Double
}

/// Per-epoch mixing statistics of one rank (summed over steps; reduced and checkpointed by name).
public struct MixStatistics: NamedSums {
    public var mixedSteps = 0.0, mixedArea = 0.0, consistency = 0.0
    public var targetRows = 0.0, classesAbove1e4 = 0.0, classesAbove1e2 = 0.0
    public init() {}
    public static var fields: [NamedSumsField<Self>] { [
        ("mixed_steps", \.mixedSteps), ("mixed_area", \.mixedArea), ("consistency", \.consistency),
        ("target_rows", \.targetRows), ("classes_above_1e-4", \.classesAbove1e4), ("classes_above_1e-2", \.classesAbove1e2),
    ] }
    /// Checkpoint key prefix, and the positional array of checkpoints written before named sums.
    public static let checkpointPrefix = "mix_sums"
    static let legacy = (name: "mix_sums", order: fields.map(\.name))

    /// Counts a step: mixed steps and the mixed-in area (1 − λ), and the effective number of classes in
    /// the targets [rows, k] (classes above 1e-4 and 1e-2 per sample: the paper's Fig. 8 measure, §5.3).
    public mutating func count(targets: Tensor, rows: Int, classes k: Int, record: MixRecord) {
        if record.mixed {
            mixedSteps += 1
            mixedArea += 1 - record.lam
        }
        for i in 0..<rows {
            let row = targets.data + i * k
            for c in 0..<k {
                if row[c] > 1e-4 { classesAbove1e4 += 1 }
                if row[c] > 1e-2 { classesAbove1e2 += 1 }
            }
        }
        targetRows += Double(rows)
    }

    /// Mixed steps (per rank) and the mean mixed-in area, over `worldSize` ranks' sums.
    public func mixedFields(worldSize: Int) -> [(key: String, value: Double)] {
        [("mixed_steps", mixedSteps / Double(worldSize)), ("mean_hist_area", mixedSteps > 0 ? mixedArea / mixedSteps : 0)]
    }

    /// The effective-class metrics every method reports.
    public var effectiveClasses: [(key: String, value: Double)] {
        [("effective_classes_1e-4", targetRows > 0 ? classesAbove1e4 / targetRows : 0),
         ("effective_classes_1e-2", targetRows > 0 ? classesAbove1e2 / targetRows : 0)]
    }
}

/// One mixing method, whole: how it mixes a batch and writes its targets, the loss term and parameters it
/// adds, what it remembers between steps, its statistics and its per-rank checkpoint state. The training
/// step and `rmtrain visualize` use the same object. A new method is one conforming class (plus the line
/// that builds it from the flags, `makeMixingMethod` in Training).
///
/// Call order per step: `mix` → model forward → `auxiliaryLoss` → `remember` → `auxiliaryBackward` →
/// model backward. `startEpoch` before an epoch's first step.
public protocol MixingMethod: AnyObject {
    /// The `--mix` value ("none", "mixup", "cutmix", "mixup+cutmix", "rm").
    var name: String { get }
    /// Trainable parameters of its own (RecursiveMix's consistency head), updated with the model's.
    var parameters: [Parameter] { get }
    var statistics: MixStatistics { get set }
    /// Initialises its parameters from its own random stream.
    func initialize(seed: UInt64)
    func startEpoch()
    /// Writes the targets ([B, K]) and mixes `images` ([B, H, W, C]) in place, for global step `step`
    /// (its random numbers depend on the seed, the step and, where the method says so, the rank).
    func mix(images: Tensor, labels: [Int], targets: Tensor, step: Int) -> MixRecord
    /// Its loss term on the model's last feature map [B, h, w, C], or nil on a step without one.
    func auxiliaryLoss(features: Tensor, imageWidth: Int, record: MixRecord) -> AuxiliaryLoss?
    /// The term's gradient at the feature map (already weighted); adds its parameters' gradients.
    func auxiliaryBackward(record: MixRecord) -> Tensor?
    /// After the forward pass: what the next step needs (the mixed images, targets and logits).
    func remember(images: Tensor, targets: Tensor, logits: Tensor)
    /// Metrics of an epoch from the statistics summed over every rank, in metrics.jsonl's order.
    func report(_ reduced: MixStatistics, worldSize: Int) -> [(key: String, value: Double)]
    /// This rank's checkpoint state (statistics, history) and its restoration (`source` names the file).
    func state() -> [SafeTensors.Entry]
    func restore(_ entries: [String: SafeTensors.Entry], source: String) throws
}

public extension MixingMethod {
    var parameters: [Parameter] { [] }
    func initialize(seed: UInt64) {}
    func auxiliaryLoss(features: Tensor, imageWidth: Int, record: MixRecord) -> AuxiliaryLoss? { nil }
    func auxiliaryBackward(record: MixRecord) -> Tensor? { nil }
    func remember(images: Tensor, targets: Tensor, logits: Tensor) {}
    func state() -> [SafeTensors.Entry] { statistics.entries(prefix: MixStatistics.checkpointPrefix) }
    func restore(_ entries: [String: SafeTensors.Entry], source: String) throws { restoreStatistics(entries) }
    func restoreStatistics(_ entries: [String: SafeTensors.Entry]) {
        statistics = MixStatistics(entries: entries, prefix: MixStatistics.checkpointPrefix, legacy: MixStatistics.legacy)
    }
    /// Mixed steps (per rank) and the mean mixed-in area, then the effective classes.
    func report(_ s: MixStatistics, worldSize: Int) -> [(key: String, value: Double)] {
        s.mixedFields(worldSize: worldSize) + s.effectiveClasses
    }
    /// The step's random stream: the seed and the step (every rank draws alike).
    func stepStream(seed: UInt64, step: Int) -> RandomStream { RandomStream(seed: seed, stream: RandomStreams.mixing, UInt64(step)) }
}

/// No mixing: (smoothed) one-hot targets.
public final class NoMixing: MixingMethod {
    public let name = "none"
    public var statistics = MixStatistics()
    private let classes: Int, smoothing: Double, style: SmoothingStyle

    public init(classes: Int, smoothing: Double = 0, style: SmoothingStyle = .rm) {
        (self.classes, self.smoothing, self.style) = (classes, smoothing, style)
    }

    public func startEpoch() { statistics = MixStatistics() }

    public func mix(images: Tensor, labels: [Int], targets: Tensor, step: Int) -> MixRecord {
        Targets.oneHot(labels: labels, classes: classes, smoothing: smoothing, style: style, into: targets)
        let record = MixRecord()
        statistics.count(targets: targets, rows: labels.count, classes: classes, record: record)
        return record
    }

    public func report(_ s: MixStatistics, worldSize: Int) -> [(key: String, value: Double)] { s.effectiveClasses }
}
