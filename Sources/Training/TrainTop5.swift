import Kernels

/// Top-5 accuracy of the main head on the training batches, against each image's own label (as `train_top1`).
public struct TrainTop5: EpochMetric {
    public init() {}
    public var counters: [String] { ["top5_hits", "top5_images"] }

    public func observe(_ step: StepOutputs, into sums: UnsafeMutablePointer<Double>) {
        let k = step.logits.count / max(step.labels.count, 1)
        for (i, label) in step.labels.enumerated() {
            let row = step.logits.data + i * k
            // The label is in the top 5 when fewer than 5 classes score higher (ties count in its favour).
            var above = 0
            for c in 0..<k where row[c] > row[label] { above += 1 }
            if above < 5 { sums[0] += 1 }
        }
        sums[1] += Double(step.labels.count)
    }

    public func report(_ sums: [Double]) -> [(key: String, value: Double)] {
        [("train_top5", sums[1] > 0 ? sums[0] / sums[1] : 0)]
    }
}
