import Mixing
import Models
import Layers

/// `--mix`: which mixing method trains the model. A new method adds its case here and its construction in
/// `makeMixingMethod` below: this file is where a method in `Mixing` becomes a `--mix` value.
public enum MixMethod: String, Sendable, CaseIterable {
    case none, mixup, cutmix, rm, mixupCutmix = "mixup+cutmix"
}

/// `--rm-box`: all ranks draw the same box and λ each step (the authors' code: same seed on every
/// rank), or each rank its own.
public enum BoxDraw: String, Sendable, CaseIterable { case shared, perRank = "per-rank" }

/// The `MixingMethod` that `--mix` and its flags name: the one place that maps flags to a method.
/// `model` gives RecursiveMix its consistency head (its own, or the classifier with `--rm-share-head`);
/// without one (`visualize`) RecursiveMix mixes and remembers but has no consistency term.
public func makeMixingMethod(_ config: TrainConfig, classes: Int, sample: (height: Int, width: Int, channels: Int),
                             model: (any Model)?, rank: Int) -> MixingMethod {
    switch config.mix {
    case .none:
        return NoMixing(classes: classes, smoothing: config.smoothing, style: config.smoothingStyle)
    case .mixup, .cutmix, .mixupCutmix:
        let both = config.mix == .mixupCutmix
        let policy = MixPolicy(
            mixupAlpha: config.mix == .mixup || both ? config.mixupAlpha : 0,
            cutmixAlpha: config.mix == .cutmix || both ? config.cutmixAlpha : 0,
            cutmixMinMax: config.cutmixMinmax, prob: config.mixProb, switchProb: config.switchProb,
            correctLam: true, labelSmoothing: config.smoothing, smoothingStyle: config.smoothingStyle)
        return BatchMixMethod(name: config.mix.rawValue, policy: policy, classes: classes, seed: config.seed)
    case .rm:
        let head = model.map { m in config.rmShareHead ? Linear(sharing: m.classifier) : Linear("fc_roi", m.featureChannels, m.numClasses) }
        return RecursiveMixMethod(
            config: RecursiveMixConfig(alpha: config.rmAlpha, mode: config.rmInterp,
                                       legacyTransposedRoI: config.rmLegacyTransposedRoi),
            omega: config.rmOmega, batch: config.batchSize, sample: sample, classes: classes,
            smoothing: config.smoothing, style: config.smoothingStyle, lifetime: config.rmHistory,
            head: head, ownsHead: !config.rmShareHead, seed: config.seed,
            rank: config.rmBox == .perRank ? rank : nil)
    }
}
