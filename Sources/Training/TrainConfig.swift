import Data
import Mixing
import Models
import Optim

/// `--mix`: which mixing method trains the model.
public enum MixMethod: String, Sendable, CaseIterable {
    case none, mixup, cutmix, rm, mixupCutmix = "mixup+cutmix"
}

/// `--rm-box`: all ranks draw the same box and λ each step (the authors' code: same seed on every
/// rank), or each rank its own.
public enum BoxDraw: String, Sendable, CaseIterable { case shared, perRank = "per-rank" }

/// Everything that defines a training run. The command fills it from flags; tests build it directly.
public struct TrainConfig: Sendable {
    public var data = "fashion-mnist"
    /// A name of `Networks.names`.
    public var model = "resnet20"
    public var epochs = 3
    public var batchSize = 128                 // per rank
    public var evalBatchSize = 256
    public var lr = 0.1
    public var scaleLR = false                 // lr × global_batch / 256
    public var weightDecay = 5e-4
    public var momentum = 0.9
    public var nesterov = false
    public var decayNormAndBias = true
    public var warmupEpochs = 0.0
    public var schedule: LRSchedule.Kind = .cosine
    public var milestones: [Int] = []
    public var lrDecay = 0.1
    public var seed: UInt64 = 27
    public var outDir = "runs/latest"
    /// Stop after this many optimizer steps in total (tests and benchmarks); nil = run all epochs.
    public var maxSteps: Int?
    /// Use only the first N training samples (quick runs); nil = all.
    public var trainLimit: Int?
    /// Use only the first N evaluation samples; nil = all.
    public var valLimit: Int?
    public var quiet = false
    /// How the data set is read and augmented (--image-size, --val-split, --bad-image, --loader-threads, …).
    public var dataOptions = DataOptions()

    // Distributed training.
    /// Size of a gradient bucket for the all-reduce, in MiB.
    public var bucketMB = 25.0
    /// Start each bucket's all-reduce as soon as backward has produced it.
    public var overlapCommunication = true
    /// Seconds a collective may wait before the watchdog aborts the job.
    public var collectiveTimeout = 300.0
    /// Compare a checksum of the parameters across ranks every N steps (0 = never).
    public var checkEvery = 200
    /// BatchNorm in eval mode during training (running statistics, not updated): fine-tuning practice,
    /// and what makes a 2-rank gradient equal a 1-rank gradient exactly.
    public var freezeBN = false
    /// Write the averaged gradients of the first step to this file (rank 0) — for verification.
    public var dumpGradientsPath: String?
    /// Every rank writes its final weights (final.rank<k>.safetensors) — for verification.
    public var saveAllRanks = false
    /// `--trace DIR`: rank 0 records every step for an independent replay (see `StepTracer`).
    public var tracePath: String?
    /// `--trace-all-ranks`: every rank records, into DIR/rank<k>.
    public var traceAllRanks = false

    // Mixing (RECURSIVEMIX_SPEC §1, §2, §10).
    public var mix: MixMethod = .none
    public var rmAlpha = 0.5
    public var rmOmega = 0.5
    public var rmInterpolation: InterpolationMode = .nearest
    public var rmHistory: HistoryMode = .perEpoch
    public var rmShareHead = false
    public var rmLegacyTransposedRoI = false
    public var rmBox: BoxDraw = .shared
    public var mixupAlpha = 1.0
    public var cutmixAlpha = 1.0
    public var cutmixMinMax: ClosedRange<Double>?
    public var mixProb = 1.0
    public var switchProb = 0.5
    public var smoothing = 0.0
    public var smoothingStyle: SmoothingStyle = .timm

    // Checkpoints.
    /// Save every N optimizer steps (0: only at epoch ends and on preemption).
    public var saveEvery = 0
    /// Step checkpoints to keep (the best one by validation top-1 is kept apart).
    public var keep = 2
    /// zstd level of checkpoints.
    public var checkpointLevel: Int32 = 3
    /// nil: start fresh; "auto": the newest valid checkpoint in the run directory, if any; else a path.
    public var resume: String?
    /// Load weights and BN statistics only (a new optimizer, schedule and sampler; any world size).
    public var resumeWeightsOnly = false
    /// Resume although the data fingerprint differs from the checkpoint's (logged).
    public var allowDataChange = false
    /// `--model-ema DECAY`: keep and evaluate an exponential moving average of the weights (`WeightEMA`).
    public var modelEMA: Double?
    /// `--model-ema-warmup`: timm's decay warm-up.
    public var modelEMAWarmup = false
    /// `--init-weights`: pretrained weights under torchvision's names (`InitWeights`).
    public var initWeights: String?
    /// Skip optimizer steps whose gradients are not finite instead of stopping.
    public var skipNonFinite = false
    /// TensorBoard event files in the run folder (rank 0): `--no-tensorboard` turns them off.
    public var tensorboard = true
    /// Per-step loss and learning rate every N steps in the event file.
    public var tensorboardEvery = 10

    public init() {}

    /// Fingerprint lines a resumed run may change without changing the training it continues.
    public static let resumableDifferences: Set<String> = ["max-steps", "check-every", "eval-batch-size"]

    /// Every setting under its `rmtrain train` flag name, with the value in flag syntax (booleans are
    /// flags: `true` means present). This is what RUN_DIR/config.yaml holds and `--config` reads back.
    public var settings: [(key: String, value: String)] {
        var s: [(String, String)] = [
            ("data", data), ("model", model), ("epochs", "\(epochs)"), ("batch-size", "\(batchSize)"),
            ("eval-batch-size", "\(evalBatchSize)"), ("lr", "\(lr)"), ("scale-lr", "\(scaleLR)"),
            ("wd", "\(weightDecay)"), ("momentum", "\(momentum)"), ("nesterov", "\(nesterov)"),
            ("no-bn-decay", "\(!decayNormAndBias)"), ("warmup-epochs", "\(warmupEpochs)"),
            ("lr-schedule", schedule.rawValue), ("milestones", milestones.map(String.init).joined(separator: ",")),
            ("lr-decay", "\(lrDecay)"), ("seed", "\(seed)"),
            ("bucket-mb", "\(bucketMB)"), ("no-overlap", "\(!overlapCommunication)"), ("check-every", "\(checkEvery)"),
            ("freeze-bn", "\(freezeBN)"), ("mix", mix.rawValue), ("rm-alpha", "\(rmAlpha)"), ("rm-omega", "\(rmOmega)"),
            ("rm-interp", rmInterpolation.rawValue), ("rm-history", rmHistory.rawValue), ("rm-share-head", "\(rmShareHead)"),
            ("rm-legacy-transposed-roi", "\(rmLegacyTransposedRoI)"), ("rm-box", rmBox.rawValue),
            ("mixup-alpha", "\(mixupAlpha)"), ("cutmix-alpha", "\(cutmixAlpha)"), ("mix-prob", "\(mixProb)"),
            ("switch-prob", "\(switchProb)"), ("smoothing", "\(smoothing)"), ("smoothing-style", smoothingStyle.rawValue),
            ("bad-image", "\(dataOptions.badImage)"), ("aug-plus", "\(dataOptions.augPlus)"),
            ("drop-last", "\(dataOptions.dropLast)"),
            ("out", outDir), ("save-every", "\(saveEvery)"), ("keep", "\(keep)"), ("ckpt-level", "\(checkpointLevel)"),
            ("loader-threads", "\(dataOptions.loaderThreads)"), ("collective-timeout", "\(collectiveTimeout)"),
            ("skip-nonfinite", "\(skipNonFinite)"), ("model-ema-warmup", "\(modelEMAWarmup)"),
            ("no-tensorboard", "\(!tensorboard)"), ("tensorboard-every", "\(tensorboardEvery)"),
        ]
        let optional: [(String, String?)] = [
            ("cutmix-minmax", cutmixMinMax.map { "\($0.lowerBound),\($0.upperBound)" }),
            ("image-size", dataOptions.imageSize.map(String.init)), ("val-split", dataOptions.valSplit),
            ("max-steps", maxSteps.map(String.init)), ("train-limit", trainLimit.map(String.init)),
            ("val-limit", valLimit.map(String.init)), ("init-weights", initWeights),
            ("model-ema", modelEMA.map { "\($0)" }),
        ]
        for case let (k, v?) in optional { s.append((k, v)) }
        return s
    }

    /// Settings that belong to one launch, not to the training: they may differ across ranks and resumes.
    public static let perLaunchSettings: Set<String> = ["out", "save-every", "keep", "ckpt-level", "loader-threads",
                                                         "collective-timeout", "skip-nonfinite",
                                                         "no-tensorboard", "tensorboard-every"]

    /// The settings that must be equal on every rank, as `name=value` lines (compared at start and on resume).
    public var fingerprint: [String] {
        settings.filter { !TrainConfig.perLaunchSettings.contains($0.key) }.map { "\($0.key)=\($0.value)" }
    }

    /// RUN_DIR/config.yaml: every setting, readable by `rmtrain train --config`.
    public var resolvedYAML: String {
        var out = "# rmtrain train configuration, resolved (flags over --config over defaults)\n"
        for (k, v) in settings {
            let plain = v == "true" || v == "false" || Double(v) != nil
            out += "\(k): \(plain ? v : "\"" + v.replacingOccurrences(of: "\"", with: "\\\"") + "\"")\n"
        }
        return out
    }
}
