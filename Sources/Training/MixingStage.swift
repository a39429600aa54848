import Distributed
import Foundation
import Kernels
import Layers
import Mixing
import Models

/// What mixing did to one step's batch.
struct MixInfo {
    /// RecursiveMix: the step pasted history (λ < 1) — the consistency branch runs.
    var rm: RecursiveMixStep?
    /// Mixup/CutMix: what the batch got (kind, λ, CutMix box).
    var baseline: MixOutcome?
    /// Weight of the current images (1 when nothing was mixed).
    var lam = 1.0
    var mixed: Bool { lam < 1 }
}

/// Per-epoch mixing statistics (this rank's sums).
struct MixSums {
    var mixedSteps = 0.0, histArea = 0.0, consistency = 0.0
    var targetRows = 0.0, classesAbove1e4 = 0.0, classesAbove1e2 = 0.0
    var array: [Double] {
        get { [mixedSteps, histArea, consistency, targetRows, classesAbove1e4, classesAbove1e2] }
        set { (mixedSteps, histArea, consistency, targetRows, classesAbove1e4, classesAbove1e2) =
                (newValue[0], newValue[1], newValue[2], newValue[3], newValue[4], newValue[5]) }
    }
}

/// The mixing part of a training step: targets with label smoothing, then Mixup/CutMix on the batch,
/// or RecursiveMix with its per-rank history and its consistency head H′ (RoIAlign 1×1 on the feature
/// map, a linear head, soft-target CE against the softmax of the historical logits, weighted ω·(1−λ)).
final class MixingStage {
    let config: TrainConfig
    let numClasses: Int
    let rank: Int
    let history: HistoryBuffer
    let roiHead: Linear?
    private let rmMixer: RecursiveMixer
    private let batchMixer: BatchMixer?
    private let roiAlign = RoIAlign1x1()
    private let consistencyLoss = SoftTargetCrossEntropy()
    private let teacher: Tensor
    private var roiGrad: Tensor?
    private(set) var sums = MixSums()

    init(config: TrainConfig, model: ResNet, sampleShape: (height: Int, width: Int, channels: Int), rank: Int) {
        self.config = config
        numClasses = model.numClasses
        self.rank = rank
        history = HistoryBuffer(batch: config.mix == .rm ? config.batchSize : 1, height: sampleShape.height,
                                width: sampleShape.width, channels: sampleShape.channels, classes: model.numClasses)
        if config.mix == .rm {
            roiHead = config.rmShareHead ? Linear(sharing: model.fc) : Linear("fc_roi", model.featureChannels, model.numClasses)
        } else {
            roiHead = nil
        }
        rmMixer = RecursiveMixer(config: RecursiveMixConfig(alpha: config.rmAlpha, mode: config.rmInterpolation,
                                                            legacyTransposedRoI: config.rmLegacyTransposedRoI))
        let both = config.mix == .mixupCutmix
        let baseline = [.mixup, .cutmix, .mixupCutmix].contains(config.mix)
        batchMixer = !baseline ? nil : BatchMixer(policy: MixPolicy(
            mixupAlpha: config.mix == .mixup || both ? config.mixupAlpha : 0,
            cutmixAlpha: config.mix == .cutmix || both ? config.cutmixAlpha : 0,
            cutmixMinMax: config.cutmixMinMax, prob: config.mixProb, switchProb: config.switchProb,
            correctLam: true, labelSmoothing: config.smoothing, smoothingStyle: config.smoothingStyle))
        teacher = Tensor(shape: [config.batchSize, model.numClasses])
    }

    /// The consistency head's own parameters (none when it shares `fc`): in the gradient buckets every
    /// step, with zero gradients on unmixed steps, so all ranks reduce the same buffers.
    var parameters: [Parameter] { (roiHead != nil && !config.rmShareHead) ? roiHead!.parameters : [] }

    /// Initialises H′ like PyTorch's Linear default, from its own random stream.
    func initialize(seed: UInt64) {
        guard !parameters.isEmpty, let head = roiHead else { return }
        var rng = RandomStream(seed: seed, stream: 0xF0C)
        let bound = 1 / Double(head.inFeatures).squareRoot()
        for p in head.parameters { for i in 0..<p.value.count { p.value[i] = Float(rng.uniform(-bound, bound)) } }
    }

    func startEpoch() {
        sums = MixSums()
        if config.rmHistory == .perEpoch { history.clear() }
    }

    /// Writes the (smoothed) targets and mixes the batch in place. Random numbers depend on the step
    /// (and the rank with `--rm-box per-rank`) only.
    func prepare(images: Tensor, labels: [Int], targets: Tensor, step: Int) -> MixInfo {
        var rng = config.rmBox == .perRank && config.mix == .rm
            ? RandomStream(seed: config.seed, stream: 0x4D49, UInt64(step), UInt64(rank))
            : RandomStream(seed: config.seed, stream: 0x4D49, UInt64(step))
        var info = MixInfo()
        switch config.mix {
        case .none:
            Targets.oneHot(labels: labels, classes: numClasses, smoothing: config.smoothing, style: config.smoothingStyle, into: targets)
        case .mixup, .cutmix, .mixupCutmix:
            let outcome = batchMixer!.apply(images: images, labels: labels, classes: numClasses, targets: targets, rng: &rng)
            info.lam = outcome.lam
            info.baseline = outcome
        case .rm:
            Targets.oneHot(labels: labels, classes: numClasses, smoothing: config.smoothing, style: config.smoothingStyle, into: targets)
            // A persistent history may hold fewer samples than this batch (after an epoch's short last
            // batch): that step trains plain, and refills the history.
            if history.count >= labels.count, let s = rmMixer.apply(images: images, targets: targets, history: history, rng: &rng) {
                info.rm = s
                info.lam = s.lam
            }
        }
        count(targets: targets, rows: labels.count, info: info)
        return info
    }

    /// The consistency term on a mixed RecursiveMix step: returns its unweighted value (0 when unmixed).
    func consistencyForward(features: Tensor, imageWidth: Int, info: MixInfo) -> Double {
        guard let s = info.rm, s.isMixed, let head = roiHead else { return 0 }
        let b = features.n
        let pooled = roiAlign.forward(features: features, box: s.roiBox,
                                      spatialScale: Double(features.w) / Double(imageWidth))
        let logits = head.forward(pooled, training: true)
        Targets.softmax(logits: history.logits, rows: b, into: teacher)
        let value = consistencyLoss.forward(logits: logits, targets: teacher)
        sums.consistency += value
        return value
    }

    /// Its gradient at the feature map, weighted ω·(1−λ); nil on unmixed steps. Adds H′'s gradients.
    func consistencyBackward(info: MixInfo) -> Tensor? {
        guard let s = info.rm, s.isMixed, let head = roiHead else { return nil }
        let weight = Float(config.rmOmega * (1 - s.lam))
        let dPooled = head.backward(consistencyLoss.backward(scale: weight))!
        return roiAlign.backward(dPooled)
    }

    /// History for the next step: this step's mixed input, mixed targets and main-head logits, stored
    /// after the forward pass and before the update (`main.py:221-223`).
    func remember(images: Tensor, targets: Tensor, logits: Tensor) {
        guard config.mix == .rm else { return }
        history.store(images: images, labels: targets, logits: logits)
    }

    /// Statistics: historical area over mixed steps, and the effective number of classes in the
    /// targets (classes above 1e-4 and 1e-2, per sample: the paper's Fig. 8 measure).
    private func count(targets: Tensor, rows: Int, info: MixInfo) {
        if info.mixed {
            sums.mixedSteps += 1
            sums.histArea += 1 - info.lam
        }
        let k = numClasses
        for i in 0..<rows {
            let row = targets.data + i * k
            for c in 0..<k {
                if row[c] > 1e-4 { sums.classesAbove1e4 += 1 }
                if row[c] > 1e-2 { sums.classesAbove1e2 += 1 }
            }
        }
        sums.targetRows += Double(rows)
    }

    // Checkpoint state: the history of this rank.
    func state() -> [SafeTensors.Entry] {
        let stats = SafeTensors.Entry(name: "mix_sums", shape: [12], values: packDoubles(sums.array))
        guard config.mix == .rm else { return [stats] }
        let n = history.count
        func e(_ name: String, _ t: Tensor) -> SafeTensors.Entry {
            SafeTensors.Entry(name: name, shape: n == 0 ? [0] : t.shape, values: n == 0 ? [] : t.array)
        }
        return [e("history.images", history.images), e("history.labels", history.labels),
                e("history.logits", history.logits),
                SafeTensors.Entry(name: "history.count", shape: [1], values: [Float(n)]), stats]
    }

    func restore(_ entries: [String: SafeTensors.Entry], source: String) throws {
        if let m = entries["mix_sums"] { sums.array = unpackDoubles(m.values) }
        guard config.mix == .rm else { return }
        guard let n = entries["history.count"]?.values.first, let images = entries["history.images"],
              let labels = entries["history.labels"], let logits = entries["history.logits"] else {
            throw TrainingError("\(source): no RecursiveMix history in the checkpoint")
        }
        if n == 0 { history.clear(); return }
        history.store(images: Tensor(shape: images.shape, values: images.values),
                      labels: Tensor(shape: labels.shape, values: labels.values),
                      logits: Tensor(shape: logits.shape, values: logits.values))
    }
}
