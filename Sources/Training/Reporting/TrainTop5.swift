import Kernels

/// Top-5 accuracy of the main head on the training batches, against each image's own label (as `train_top1`).
public struct TrainTop5: EpochMetric {
    public init() {}
    public var counters: [String] { ["top5_hits", "top5_images"] }

    public func observe(_ step: StepOutputs, into sums: UnsafeMutablePointer<Double>) {
        let k = step.logits.count / max(step.labels.count, 1)
        for (i, label) in step.labels.enumerated() {
            if labelRank(label: label, in: step.logits.data + i * k, classes: k) < 5 { sums[0] += 1 }
        }
        sums[1] += Double(step.labels.count)
    }

    public func report(_ sums: [Double]) -> [(key: String, value: Double)] {
        [("train_top5", sums[1] > 0 ? sums[0] / sums[1] : 0)]
    }
}
