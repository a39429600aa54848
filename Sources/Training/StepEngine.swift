import Data
import Distributed
import Foundation
import Kernels
import Layers
import Models

/// What one optimizer step reports.
public struct StepStats {
    public var loss: Double
    public var batchSize: Int
    public var top1Hits: Int
    public var waitSeconds: Double
    /// False when the averaged gradients hold a NaN or an infinity (the step must not be applied).
    public var gradientsFinite: Bool
}

/// One training step's computation on one batch: targets, forward, loss, and backward with the gradient
/// all-reduce overlapping it. Afterwards every rank holds the same averaged gradients; the caller
/// applies the optimizer.
final class StepEngine {
    let model: ResNet
    let numClasses: Int
    let comm: Communicator
    let config: TrainConfig
    private let criterion = SoftTargetCrossEntropy()
    private let targets: Tensor
    private let buckets: GradientBuckets

    init(model: ResNet, numClasses: Int, maxBatch: Int, comm: Communicator, config: TrainConfig) {
        self.model = model
        self.numClasses = numClasses
        self.comm = comm
        self.config = config
        targets = Tensor(shape: [maxBatch, numClasses])
        buckets = GradientBuckets(groups: model.parameterGroupsInBackwardOrder,
                                  bucketBytes: Int(config.bucketMB * 1_048_576), comm: comm,
                                  overlap: config.overlapCommunication)
    }

    /// Parameters beyond the backbone and its classifier (the RecursiveMix consistency head).
    var extraParameters: [Parameter] { [] }
    var trainableParameters: [Parameter] { model.parameters + extraParameters }

    func startEpoch() {}

    /// This rank's own state for checkpoints (RecursiveMix history), and its restoration.
    func rankState() -> [SafeTensors.Entry] { [] }
    func restoreRankState(_ entries: [String: SafeTensors.Entry], source: String) throws {}

    func step(_ batch: Batch, step: Int) throws -> StepStats {
        let k = numClasses
        targets.reshape([batch.size, k])
        targets.zero()
        for (i, label) in batch.labels.enumerated() { targets[i * k + label] = 1 }
        for p in trainableParameters { p.grad.zero() }
        let logits = model.forward(batch.images, training: !config.freezeBN)
        let hits = countTop1(logits, batch.labels)
        let loss = criterion.forward(logits: logits, targets: targets)
        if let comm = comm as? MPICommunicator { comm.watchdog.step = step }
        buckets.reset()
        buckets.resetWaitTime()
        var failure: Error?
        model.backward(logitsGradient: criterion.backward()) { ready in
            do { try self.buckets.markReady(ready) } catch { failure = error }
        }
        if let failure { throw failure }
        try buckets.finish()
        // After the all-reduce every rank sees the same gradients, so every rank decides alike.
        let finite = trainableParameters.allSatisfy { $0.grad.isFinite }
        return StepStats(loss: loss, batchSize: batch.size, top1Hits: hits, waitSeconds: buckets.waitSeconds,
                         gradientsFinite: finite)
    }
}

func countTop1(_ logits: Tensor, _ labels: [Int]) -> Int {
    let k = logits.count / max(labels.count, 1)
    var hits = 0
    for (i, label) in labels.enumerated() {
        let row = logits.data + i * k
        var best = 0
        for c in 1..<k where row[c] > row[best] { best = c }
        if best == label { hits += 1 }
    }
    return hits
}
