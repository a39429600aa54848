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

/// What one step produced: its statistics, and what the step's observers (the trace, the TensorBoard
/// picture) read after it. The tensors are the engine's and the model's buffers: valid until the next step.
struct StepResult {
    var stats: StepStats
    /// The batch as loaded, before mixing changed it in place (a copy, only when the step was asked for it).
    let unmixed: Tensor?
    /// The batch the model saw [B, H, W, C], its soft targets [B, K] and the main head's logits [B, K].
    let mixed: Tensor, targets: Tensor, logits: Tensor
    /// What the mixing method did (λ, boxes).
    let record: MixRecord
    /// The main head's cross-entropy and the unweighted consistency term (0 on a step without one).
    let crossEntropy: Double, consistency: Double
}

/// One training step's computation on one batch: targets and mixing, forward, loss (with the
/// RecursiveMix consistency term), and backward with the gradient all-reduce overlapping it.
/// Afterwards every rank holds the same averaged gradients; the caller applies the optimizer.
final class StepEngine {
    /// What the step needs of the run's settings.
    struct Options {
        /// The largest batch (sizes the targets).
        var batchSize: Int
        /// `--freeze-bn`: BatchNorm uses its running statistics and does not update them.
        var freezeBN: Bool
        /// Gradient all-reduce buckets (`--bucket-mb`, DDP's `bucket_cap_mb`), and whether they overlap backward.
        var bucketBytes: Int
        var overlapCommunication: Bool
        /// `--allreduce-dtype`.
        var allReduceDtype: AllReduceDtype

        /// The run's settings.
        init(_ run: RunSettings, _ allReduce: AllReduceSettings) {
            batchSize = run.batchSize
            freezeBN = run.freezeBN
            bucketBytes = Int(allReduce.bucketMB * 1_048_576)
            overlapCommunication = !allReduce.noOverlap
            allReduceDtype = allReduce.allreduceDtype
        }
        /// The flags' defaults, with this batch size.
        init(batchSize: Int) {
            self.init(RunSettings.defaults, AllReduceSettings.defaults)
            self.batchSize = batchSize
        }
    }

    let model: any Model
    let comm: Communicator
    let options: Options
    let mixing: MixingMethod
    private let criterion = SoftTargetCrossEntropy()
    private let targets: Tensor
    private let buckets: GradientBuckets
    /// Every trainable parameter's value and gradient as slices of two flat buffers, in backward order.
    let flat: FlatParameters
    /// The per-epoch training metrics' counters of this rank (`EpochMetrics.all`).
    var metrics = EpochMetrics()

    /// `mixing` is built for this model (`makeMixingMethod`): its parameters (the RecursiveMix consistency
    /// head) are trained with the model's.
    init(model: any Model, mixing: MixingMethod, comm: Communicator, options: Options) {
        self.model = model
        self.comm = comm
        self.options = options
        self.mixing = mixing
        targets = Tensor(shape: [options.batchSize, model.numClasses])
        // The consistency head's gradients are final before the backbone's backward starts: first bucket.
        let laidOut = FlatParameters(([mixing.parameters] + model.parameterGroupsInBackwardOrder).flatMap { $0 })
        precondition((model.parameters + mixing.parameters).allSatisfy { laidOut.offset(of: $0) != nil },
                     "a parameter is missing from the model's backward groups")
        flat = laidOut
        buckets = GradientBuckets(flat: flat, bucketBytes: options.bucketBytes, comm: comm,
                                  overlap: options.overlapCommunication, bf16: options.allReduceDtype == .bf16)
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

    /// The step for global step `step` (0-based): mixes `batch.images` in place, runs forward and backward,
    /// and all-reduces the gradients. `keepingUnmixed` copies the batch before mixing (for the trace).
    /// Throws what the gradient all-reduce throws (a rank gone, a collective timed out).
    func step(_ batch: Batch, step: Int, keepingUnmixed: Bool = false) throws -> StepResult {
        let x = batch.images
        let unmixed = keepingUnmixed ? Tensor(shape: x.shape, values: x.array) : nil
        targets.reshape([batch.size, model.numClasses])
        var mixingSeconds = 0.0
        let training = !options.freezeBN
        // 1. Mixing and forward.
        let record = timed(&mixingSeconds) { mixing.mix(images: x, labels: batch.labels, targets: targets, step: step) }
        flat.grads.zero()
        let features = model.forwardFeatures(x, training: training)
        let logits = model.classify(features, training: training)
        // 2. The loss, with the mixing method's term; the history remembers this batch.
        let ce = criterion.forward(logits: logits, targets: targets)
        let auxiliary = timed(&mixingSeconds) { mixing.auxiliaryLoss(features: features, imageWidth: x.w, record: record) }
        let loss = ce + (auxiliary.map { $0.weight * $0.value } ?? 0)
        timed(&mixingSeconds) { mixing.remember(images: x, targets: targets, logits: logits) }
        let hits = countTop1(logits, batch.labels)
        metrics.observe(StepOutputs(logits: logits, labels: batch.labels, targets: targets))
        // 3. Backward, each bucket's all-reduce started as soon as its gradients are final.
        comm.beginStep(step + 1)
        let waitSeconds = try backward(record: record, mixingSeconds: &mixingSeconds)
        // 4. What the step reports. After the all-reduce every rank sees the same gradients, so every rank
        //    decides alike whether they are finite.
        let stats = StepStats(loss: loss, batchSize: batch.size, top1Hits: hits, waitSeconds: waitSeconds,
                              mixingSeconds: mixingSeconds, gradientsFinite: flat.grads.isFinite)
        return StepResult(stats: stats, unmixed: unmixed, mixed: x, targets: targets, logits: logits, record: record,
                          crossEntropy: ce, consistency: auxiliary?.value ?? 0)
    }

    /// Backward through the mixing method's term and the model, all-reducing the gradients bucket by bucket.
    /// Returns the seconds spent waiting for the all-reduce.
    private func backward(record: MixRecord, mixingSeconds: inout Double) throws -> Double {
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
        return buckets.waitSeconds
    }
}

func countTop1(_ logits: Tensor, _ labels: [Int]) -> Int {
    let k = logits.count / max(labels.count, 1)
    return labels.enumerated().filter { labelRank(label: $0.element, in: logits.data + $0.offset * k, classes: k) < 1 }.count
}
