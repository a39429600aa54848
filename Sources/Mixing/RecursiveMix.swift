import Kernels
import Layers

/// The RecursiveMix settings of §1 and §8, with the reference code's defaults.
public struct RecursiveMixConfig: Equatable, Sendable {
    /// u ~ U[0, alpha] is the nominal historical-area fraction (`--aug_alpha`, default 0.5).
    public var alpha: Double
    /// History resize mode (`--interpolate_mode`, default nearest).
    public var mode: InterpolationMode
    /// Reproduce the release before `ed381bf` (§1.8): the patch goes into the transposed box while the
    /// RoI stays the sampled box, so the consistency head looks at the mirror image of the patch.
    public var legacyTransposedRoI: Bool

    public init(alpha: Double = 0.5, mode: InterpolationMode = .nearest, legacyTransposedRoI: Bool = false) {
        self.alpha = alpha
        self.mode = mode
        self.legacyTransposedRoI = legacyTransposedRoI
    }
}

/// What one RecursiveMix step did. `lam` is the weight of the CURRENT image (the paper's λ is 1 − lam);
/// `roiBox` is what RoIAlign must read (equal to `pasteBox` in the fixed version).
public struct RecursiveMixStep: Equatable, Sendable {
    public var pasteBox: Box
    public var roiBox: Box
    public var lam: Double
    /// λ < 1: the RoI branch and the consistency loss run this step (`main.py:213-220`).
    public var isMixed: Bool { lam < 1 }
}

/// `recursive_mix` of `utils.py:356-390` (§1.1) on one rank's batch: samples one box and λ, pastes the
/// nearest- (or bilinear-) resized WHOLE history image i into image i's box, in place, and mixes the
/// labels y = lam·y + (1 − lam)·ỹ_hist[:bs]. The caller then runs the model, the RoI branch when
/// `isMixed`, and stores (x, y, logits) into the history.
public final class RecursiveMixer {
    public let config: RecursiveMixConfig
    private let paster = HistoryPaster()

    public init(config: RecursiveMixConfig = RecursiveMixConfig()) { self.config = config }

    /// Returns nil, consuming no random numbers, when the history is empty (the first step of an epoch:
    /// a plain step on the clean batch, `main.py:207-211`). Otherwise draws u, cx, cy (in that order).
    /// `images` [B, H, W, C] and `targets` [B, K] are updated in place; B ≤ history.count.
    public func apply(images x: Tensor, targets y: Tensor, history: HistoryBuffer,
                      rng: inout RandomStream) -> RecursiveMixStep? {
        if history.isEmpty { return nil }
        let b = x.n
        precondition(b <= history.count, "batch of \(b) but only \(history.count) history samples")
        precondition(y.shape[0] == b, "targets \(y.shape) do not match the batch of \(b)")
        let h = x.h, w = x.w
        // The legacy code read W = size[2] (the height) and H = size[3]; identical for square images.
        let (box, lam) = config.legacyTransposedRoI
            ? BoxSampler.recursiveMix(width: h, height: w, alpha: config.alpha, rng: &rng)
            : BoxSampler.recursiveMix(width: w, height: h, alpha: config.alpha, rng: &rng)
        let pasteBox = config.legacyTransposedRoI ? box.transposed : box
        if !box.isEmpty {
            paster.paste(history: history.images, into: x, box: pasteBox, mode: config.mode)
        }
        Targets.mix(y, with: history.labels, lam: lam)
        return RecursiveMixStep(pasteBox: pasteBox, roiBox: box, lam: lam)
    }
}

/// `--rm-history`: RecursiveMix's history is reset at every epoch start (the authors' code:
/// `old_inputs = None`, `main.py:195`) or kept across epochs (and restored on resume).
public enum HistoryMode: String, Sendable, CaseIterable { case perEpoch = "per-epoch", persistent }

/// RecursiveMix as a `MixingMethod` (§1): the per-rank history (x̃, ỹ, logits) of the previous step, pasted
/// into this batch by `RecursiveMixer`; the consistency head H′ (RoIAlign 1×1 on the feature map over the
/// RoI box, a linear head, soft-target CE against the softmax of the historical logits, weighted ω·(1−λ),
/// `main.py:213-220`); the history stored after the forward pass (`main.py:221-223`).
public final class RecursiveMixMethod: MixingMethod {
    /// What `--mix rm`'s flags choose (the defaults are the flags', `TrainSettings.swift`).
    public struct Settings: Sendable {
        /// The mixer's box and resize settings (α, interpolation, the legacy transposed paste).
        public var mixer: RecursiveMixConfig
        /// ω of the consistency term ω·(1−λ)·CE(H′(RoI), softmax(p_hist)) (`main.py:219`).
        public var omega: Double
        /// Label smoothing of the current batch's one-hot targets, and its off-value rule.
        public var smoothing: Double, style: SmoothingStyle
        /// Whether the history is reset at every epoch start (`--rm-history`).
        public var lifetime: HistoryMode
        /// The draws' seed; `rank` non-nil draws boxes per rank (`--rm-box per-rank`), nil the same box on every rank.
        public var seed: UInt64, rank: Int?

        public init(mixer: RecursiveMixConfig, omega: Double, smoothing: Double, style: SmoothingStyle,
                    lifetime: HistoryMode, seed: UInt64, rank: Int?) {
            (self.mixer, self.omega, self.smoothing, self.style) = (mixer, omega, smoothing, style)
            (self.lifetime, self.seed, self.rank) = (lifetime, seed, rank)
        }
    }

    /// H′, the consistency head: a Linear of the method's own (`fc_roi`, the authors' code), the model's
    /// classifier (`--rm-share-head`), or none where no model is trained (`visualize`: no consistency term).
    public enum Head {
        case own(Linear), sharedClassifier(Linear), none
        var linear: Linear? {
            switch self { case .own(let l), .sharedClassifier(let l): return l; case .none: return nil }
        }
    }

    public let name = "rm"
    public let history: HistoryBuffer
    public let head: Head
    public var statistics = MixStatistics()
    private let settings: Settings
    private let mixer: RecursiveMixer
    private let classes: Int
    private let roiAlign = RoIAlign1x1()
    private let consistencyLoss = SoftTargetCrossEntropy()
    private let teacher: Tensor

    /// `batch` (images per step) and `sample` size the history ([batch, H, W, C] images, [batch, classes]
    /// labels and logits).
    public init(_ settings: Settings, batch: Int, sample: (height: Int, width: Int, channels: Int), classes: Int,
                head: Head) {
        mixer = RecursiveMixer(config: settings.mixer)
        history = HistoryBuffer(batch: batch, height: sample.height, width: sample.width, channels: sample.channels,
                                classes: classes)
        (self.settings, self.classes, self.head) = (settings, classes, head)
        teacher = Tensor(shape: [batch, classes])
    }

    /// H′'s own parameters (none when it shares the classifier): in the gradient buckets every step, with
    /// zero gradients on unmixed steps, so all ranks reduce the same buffers.
    public var parameters: [Parameter] {
        if case .own(let l) = head { return l.parameters }
        return []
    }

    /// Initialises H′ like PyTorch's Linear default, from its own random stream.
    public func initialize(seed: UInt64) {
        guard case .own(let head) = head else { return }
        var rng = RandomStream(seed: seed, stream: RandomStreams.consistencyHead)
        head.resetParameters(rng: &rng)
    }

    public func startEpoch() {
        statistics = MixStatistics()
        if settings.lifetime == .perEpoch { history.clear() }
    }

    /// A persistent history may hold fewer samples than this batch (after an epoch's short last batch):
    /// that step trains plain, and refills the history.
    public func mix(images: Tensor, labels: [Int], targets: Tensor, step: Int) -> MixRecord {
        let seed = settings.seed
        var rng = settings.rank.map { RandomStream(seed: seed, stream: RandomStreams.mixing, UInt64(step), UInt64($0)) } ?? stepStream(seed: seed, step: step)
        Targets.oneHot(labels: labels, classes: classes, smoothing: settings.smoothing, style: settings.style, into: targets)
        var record = MixRecord()
        if history.count >= labels.count, let s = mixer.apply(images: images, targets: targets, history: history, rng: &rng) {
            record = MixRecord(kind: "rm", lam: s.lam, box: s.roiBox, pasteBox: s.pasteBox)
        }
        statistics.count(targets: targets, rows: labels.count, classes: classes, record: record)
        return record
    }

    /// The consistency term on a mixed step; its unweighted value is also summed for the statistics.
    public func auxiliaryLoss(features: Tensor, imageWidth: Int, record: MixRecord) -> AuxiliaryLoss? {
        guard record.mixed, let box = record.box, let head = head.linear else { return nil }
        let pooled = roiAlign.forward(features: features, box: box, spatialScale: Double(features.w) / Double(imageWidth))
        let logits = head.forward(pooled, training: true)
        Targets.softmax(logits: history.logits, rows: features.n, into: teacher)
        let value = consistencyLoss.forward(logits: logits, targets: teacher)
        statistics.consistency += value
        return AuxiliaryLoss(value: value, weight: settings.omega * (1 - record.lam))
    }

    public func auxiliaryBackward(record: MixRecord) -> Tensor? {
        guard record.mixed, record.box != nil, let head = head.linear else { return nil }
        let dPooled = head.backward(consistencyLoss.backward(scale: Float(settings.omega * (1 - record.lam))))
        return roiAlign.backward(dPooled)
    }

    public func remember(images: Tensor, targets: Tensor, logits: Tensor) {
        history.store(images: images, labels: targets, logits: logits)
    }

    public func report(_ s: MixStatistics, worldSize: Int) -> [(key: String, value: Double)] {
        s.mixedFields(worldSize: worldSize) + [("consistency_loss", s.mixedSteps > 0 ? s.consistency / s.mixedSteps : 0)]
            + s.effectiveClasses
    }

    /// The history of this rank (empty tensors of shape [0] when there is none) and the statistics.
    public func state() -> [SafeTensors.Entry] {
        let n = history.count
        func e(_ name: String, _ t: Tensor) -> SafeTensors.Entry {
            SafeTensors.Entry(name: name, shape: n == 0 ? [0] : t.shape, values: n == 0 ? [] : t.array)
        }
        return [e("history.images", history.images), e("history.labels", history.labels), e("history.logits", history.logits),
                SafeTensors.Entry(name: "history.count", shape: [1], values: [Float(n)])]
            + statistics.entries(prefix: MixStatistics.checkpointPrefix)
    }

    public func restore(_ entries: [String: SafeTensors.Entry], source: String) throws {
        restoreStatistics(entries)
        guard let n = entries["history.count"]?.values.first, let images = entries["history.images"],
              let labels = entries["history.labels"], let logits = entries["history.logits"] else {
            throw MixingError("\(source): no RecursiveMix history in the checkpoint")
        }
        if n == 0 { history.clear(); return }
        history.store(images: Tensor(shape: images.shape, values: images.values),
                      labels: Tensor(shape: labels.shape, values: labels.values),
                      logits: Tensor(shape: logits.shape, values: logits.values))
    }
}

public struct MixingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
