import DataPipeline
import Distributed
import Foundation
import Kernels
import Layers
import Mixing
import Models

/// What one optimizer step reports.
public struct StepStats {
    public var loss: Double
    public var batchSize: Int
    public var top1Hits: Int
    public var waitSeconds: Double
    /// Seconds in the mixing method's own work (mixing the batch, its loss term and that term's backward,
    /// remembering the history): what a mixing method costs over a plain step.
    public var mixingSeconds: Double = 0
    /// False when the averaged gradients hold a NaN or an infinity (the step must not be applied).
    public var gradientsFinite: Bool
}

/// One training step's computation on one batch: targets and mixing, forward, loss (with the
/// RecursiveMix consistency term), and backward with the gradient all-reduce overlapping it.
/// Afterwards every rank holds the same averaged gradients; the caller applies the optimizer.
final class StepEngine {
    let model: any Model
    let numClasses: Int
    let comm: Communicator
    let config: TrainConfig
    let mixing: MixingMethod
    private let criterion = SoftTargetCrossEntropy()
    /// This step's targets (after mixing) and what the mixing method did: read by the TensorBoard picture.
    private(set) var targets: Tensor
    private(set) var lastRecord: MixRecord?
    private let buckets: GradientBuckets
    /// Every trainable parameter's value and gradient as slices of two flat buffers, in backward order.
    let flat: FlatParameters
    /// The per-epoch training metrics' counters of this rank (`EpochMetrics.all`).
    var metrics = EpochMetrics()
    /// `--trace`: records each step's batch, draws and results (nil when not tracing).
    var tracer: StepTracer?

    init(model: any Model, numClasses: Int, sampleShape: (height: Int, width: Int, channels: Int), comm: Communicator,
         config: TrainConfig) {
        self.model = model
        self.numClasses = numClasses
        self.comm = comm
        self.config = config
        mixing = makeMixingMethod(config, classes: numClasses, sample: sampleShape, model: model, rank: comm.rank)
        mixing.initialize(seed: config.seed)
        targets = Tensor(shape: [config.batchSize, numClasses])
        // The consistency head's gradients are final before the backbone's backward starts: first bucket.
        let laidOut = FlatParameters(([mixing.parameters] + model.parameterGroupsInBackwardOrder).flatMap { $0 })
        precondition((model.parameters + mixing.parameters).allSatisfy { laidOut.offset(of: $0) != nil },
                     "a parameter is missing from the model's backward groups")
        flat = laidOut
        buckets = GradientBuckets(flat: flat, bucketBytes: Int(config.bucketMB * 1_048_576), comm: comm,
                                  overlap: config.overlapCommunication)
    }

    /// Parameters beyond the backbone and its classifier (the RecursiveMix consistency head).
    var extraParameters: [Parameter] { mixing.parameters }
    /// Every parameter the optimizer updates, collected once (the step must not allocate).
    private(set) lazy var trainableParameters: [Parameter] = model.parameters + extraParameters

    func startEpoch() {
        mixing.startEpoch()
        metrics.reset()
    }

    /// This rank's own state for checkpoints (RecursiveMix history, mixing statistics), and its restoration.
    func rankState() -> [SafeTensors.Entry] { mixing.state() + metrics.entries() }
    func restoreRankState(_ entries: [String: SafeTensors.Entry], source: String) throws {
        try mixing.restore(entries, source: source)
        metrics.restore(entries)
    }

    func step(_ batch: Batch, step: Int) throws -> StepStats {
        let x = batch.images
        tracer?.captureRaw(images: x, labels: batch.labels, indices: batch.indices)
        targets.reshape([batch.size, numClasses])
        var mixingSeconds = 0.0
        let record = timed(&mixingSeconds) { mixing.mix(images: x, labels: batch.labels, targets: targets, step: step) }
        lastRecord = record
        flat.grads.zero()
        let features = model.forwardFeatures(x, training: !config.freezeBN)
        let logits = model.classify(features, training: !config.freezeBN)
        let hits = countTop1(logits, batch.labels)
        metrics.observe(StepOutputs(logits: logits, labels: batch.labels, targets: targets))
        let ce = criterion.forward(logits: logits, targets: targets)
        var loss = ce
        let auxiliary = timed(&mixingSeconds) { mixing.auxiliaryLoss(features: features, imageWidth: x.w, record: record) }
        if let auxiliary { loss += auxiliary.weight * auxiliary.value }
        tracer?.captureStep(record: record, mixed: x, targets: targets, logits: logits, ce: ce,
                            consistency: auxiliary?.value ?? 0, loss: loss)
        timed(&mixingSeconds) { mixing.remember(images: x, targets: targets, logits: logits) }

        if let comm = comm as? MPICommunicator { comm.watchdog.step = step + 1 }
        buckets.reset()
        buckets.resetWaitTime()
        let featureGradient = timed(&mixingSeconds) { mixing.auxiliaryBackward(record: record) }
        try buckets.markReady(mixing.parameters)
        var failure: Error?
        model.backward(logitsGradient: criterion.backward(), featureGradient: featureGradient) { ready in
            do { try self.buckets.markReady(ready) } catch { failure = error }
        }
        if let failure { throw failure }
        try buckets.finish()
        // After the all-reduce every rank sees the same gradients, so every rank decides alike.
        let finite = flat.grads.isFinite
        return StepStats(loss: loss, batchSize: batch.size, top1Hits: hits, waitSeconds: buckets.waitSeconds,
                         mixingSeconds: mixingSeconds, gradientsFinite: finite)
    }
}

func countTop1(_ logits: Tensor, _ labels: [Int]) -> Int {
    let k = logits.count / max(labels.count, 1)
    return labels.enumerated().filter { labelRank(label: $0.element, in: logits.data + $0.offset * k, classes: k) < 1 }.count
}
