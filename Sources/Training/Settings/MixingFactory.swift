import Checkpoint
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

/// The `MixingMethod` that `--mix` and its flags name, initialised from `seed`: the one place that maps flags
/// to a method. `batchSize` sizes RecursiveMix's history; `model` gives RecursiveMix its consistency head (its
/// own, or the classifier with `--rm-share-head`); without one (`visualize`, `rmtrain bench` builds one)
/// RecursiveMix mixes and remembers but has no consistency term.
public func makeMixingMethod(_ flags: MixingSettings, batchSize: Int, seed: UInt64, classes: Int,
                             sample: (height: Int, width: Int, channels: Int), model: (any Model)?, rank: Int) -> MixingMethod {
    let method: MixingMethod
    switch flags.mix {
    case .none:
        method = NoMixing(classes: classes, smoothing: flags.smoothing, style: flags.smoothingStyle)
    case .mixup, .cutmix, .mixupCutmix:
        let both = flags.mix == .mixupCutmix
        let policy = MixPolicy(
            mixupAlpha: flags.mix == .mixup || both ? flags.mixupAlpha : 0,
            cutmixAlpha: flags.mix == .cutmix || both ? flags.cutmixAlpha : 0,
            cutmixMinMax: flags.cutmixMinmax, prob: flags.mixProb, switchProb: flags.switchProb,
            correctLam: true, labelSmoothing: flags.smoothing, smoothingStyle: flags.smoothingStyle)
        method = BatchMixMethod(name: flags.mix.rawValue, policy: policy, classes: classes, seed: seed)
    case .rm:
        let head: RecursiveMixMethod.Head = model.map { m in
            flags.rmShareHead ? .sharedClassifier(Linear(sharing: m.classifier)) : .own(Linear(CheckpointNames.consistencyHead, m.featureChannels, m.numClasses))
        } ?? .none
        let settings = RecursiveMixMethod.Settings(
            mixer: RecursiveMixConfig(alpha: flags.rmAlpha, mode: flags.rmInterp, legacyTransposedRoI: flags.rmLegacyTransposedRoi),
            omega: flags.rmOmega, smoothing: flags.smoothing, style: flags.smoothingStyle, lifetime: flags.rmHistory,
            seed: seed, rank: flags.rmBox == .perRank ? rank : nil)
        method = RecursiveMixMethod(settings, batch: batchSize, sample: sample, classes: classes, head: head)
    }
    method.initialize(seed: seed)
    return method
}
