import Kernels

/// What one training step shows a metric: the main head's logits [B, K] on the (mixed) batch, the batch's
/// own labels, and the targets it was trained towards [B, K].
public struct StepOutputs {
    public let logits: Tensor
    public let labels: [Int]
    public let targets: Tensor
}

/// A per-epoch metric of the training batches. Its counters are summed over the epoch's steps on each rank,
/// kept in checkpoints by name (`metric.<counter>`), summed over the ranks at the epoch's end, and turned into
/// metrics.jsonl fields. A new metric is one conforming type plus its entry in `EpochMetrics.all`.
public protocol EpochMetric: Sendable {
    /// Its counters' names, in the order `observe` and `report` use.
    var counters: [String] { get }
    /// Adds one step into `sums` (one value per counter).
    func observe(_ step: StepOutputs, into sums: UnsafeMutablePointer<Double>)
    /// Its fields, from the counters summed over every step and rank of the epoch.
    func report(_ sums: [Double]) -> [(key: String, value: Double)]
}

/// The metrics every run reports (after the mixing method's fields), and their counters.
public struct EpochMetrics: Sendable {
    public static let all: [any EpochMetric] = [TrainTop5()]

    public let metrics: [any EpochMetric]
    /// Every metric's counters, concatenated in metric order.
    public private(set) var sums: [Double]
    private let offsets: [Int]

    public init(_ metrics: [any EpochMetric] = EpochMetrics.all) {
        self.metrics = metrics
        offsets = metrics.reduce(into: [0]) { $0.append($0.last! + $1.counters.count) }
        sums = [Double](repeating: 0, count: offsets.last!)
    }

    public mutating func reset() { sums = [Double](repeating: 0, count: sums.count) }

    public mutating func observe(_ step: StepOutputs) {
        sums.withUnsafeMutableBufferPointer { b in
            for (m, o) in zip(metrics, offsets) { m.observe(step, into: b.baseAddress! + o) }
        }
    }

    /// The fields of `reduced` (these sums over every rank), metric by metric.
    public func report(_ reduced: [Double]) -> [(key: String, value: Double)] {
        zip(metrics, offsets).flatMap { m, o in m.report(Array(reduced[o..<(o + m.counters.count)])) }
    }

    private var names: [String] { metrics.flatMap(\.counters).map { "metric." + $0 } }

    /// Checkpoint entries, one exact Double per counter.
    public func entries() -> [SafeTensors.Entry] {
        zip(names, sums).map { SafeTensors.Entry(name: $0, shape: [2], values: packDoubles([$1])) }
    }

    /// Counters from a checkpoint; one it lacks (written before the metric existed) starts at 0.
    public mutating func restore(_ entries: [String: SafeTensors.Entry]) {
        for (i, name) in names.enumerated() { sums[i] = entries[name].flatMap { unpackDoubles($0.values).first } ?? 0 }
    }
}
