import ArgumentParser
import DataPipeline
import Foundation
import Kernels
import Mixing
import Models
import Optim

// The flags of `rmtrain train`, each declared once (see Flags.swift): a new flag is one property in the
// group whose scope fits it, plus the code that reads it. `TrainConfig` holds one value of each group.

extension MixMethod: ExpressibleByArgument, FlagText {}
extension BoxDraw: ExpressibleByArgument, FlagText {}
extension HistoryMode: ExpressibleByArgument, FlagText {}
extension InterpolationMode: ExpressibleByArgument, FlagText {}
extension SmoothingStyle: ExpressibleByArgument, FlagText {}
extension LRSchedule.Kind: ExpressibleByArgument, FlagText {}
extension LRSchedule.SteppedOn: ExpressibleByArgument, FlagText {}
extension BadImagePolicy: ExpressibleByArgument, FlagText {}
extension Precision: ExpressibleByArgument, FlagText {}

private let positiveCount = FlagCheck<Int>.range(1...1_000_000)
private let fraction = FlagCheck<Double>.number("in [0, 1)") { $0 >= 0 && $0 < 1 }
private let betaAlpha = FlagCheck<Double>.number("in (0, 1000]") { $0 > 0 && $0 <= 1000 }
private let probability = FlagCheck<Double>.number("in [0, 1]") { (0...1).contains($0) }

// The training groups (scope `training`): equal on every rank and across a resume (except that --epochs may
// grow and --data may move to the same images). One group per concept, each a section of `train --help`.

/// The model and the data it trains on.
public struct RunSettings: SettingsGroup {
    public static let scope = SettingScope.training
    public init() {}

    @Option(help: "Data set: fashion-mnist (Debian's dataset-fashion-mnist, the default), fashion-mnist:DIR, imagefolder:DIR (DIR/train/<class>/*, DIR/val or DIR/test), cifar10-bin:DIR, cifar100-bin:DIR, shards:DIR (from rmtrain pack).")
    public var data = "fashion-mnist"

    @Option(help: "Model: \(Networks.names.joined(separator: ", ")).", check: .oneOf(Networks.names))
    public var model = "resnet20"

    @Option(help: "Batch size per process.", check: positiveCount)
    public var batchSize = 128

    @Option(help: "Random seed (initialisation, shuffling, augmentation).", check: .any)
    public var seed: UInt64 = 27

    @Option(help: "Train on N samples: a class-balanced subset (⌊N/K⌋ per class, the rest spread at random; a fixed draw, the same for every --seed).",
            check: .range(1...Int.max))
    public var trainLimit: Int?

    @Option(help: "Evaluate on N samples: a class-balanced subset, drawn as for --train-limit.", check: .range(1...Int.max))
    public var valLimit: Int?

    @Option(help: ArgumentHelp("Start from these weights (safetensors under torchvision's names: torchvision, timm, `rmtrain export`; F32, F16 or BF16). A classifier for another number of classes is re-initialised; the log names every tensor skipped.", valueName: "file"),
            check: .existingFile)
    public var initWeights: String?

    @Flag(help: "BatchNorm in eval mode while training (running statistics, frozen).")
    public var freezeBN = false

    @Option(help: "Arithmetic of convolutions and linear layers: fp32, or bf16-mixed (bfloat16 multiplications with float32 accumulation, BatchNorm, losses and master weights: PyTorch autocast's split; needs AVX512-BF16).")
    public var precision = Precision.fp32
}

/// SGD and the learning-rate schedule over the run's epochs.
public struct OptimizerSettings: SettingsGroup {
    public static let scope = SettingScope.training
    public init() {}

    @Option(help: "Epochs (may grow on resume: the schedule is recomputed).", check: positiveCount)
    public var epochs = 3

    @Option(help: "Base learning rate.", check: .positive)
    public var lr = 0.1

    @Flag(help: "Scale the learning rate: lr × global batch / 256.")
    public var scaleLR = false

    @Option(help: "Weight decay.", check: fraction)
    public var wd = 5e-4

    @Option(help: "SGD momentum.", check: fraction)
    public var momentum = 0.9

    @Flag(help: "Nesterov momentum.")
    public var nesterov = false

    @Flag(help: "Exempt BatchNorm parameters and biases from weight decay (the RecursiveMix code decays all).")
    public var noBNDecay = false

    @Option(help: "Linear warmup, in epochs (fractions allowed; at most --epochs).", check: .nonNegative)
    public var warmupEpochs = 0.0

    @Option(help: "cosine (to 0 at the last step) or step (× --lr-decay at each of --milestones).")
    public var lrSchedule: LRSchedule.Kind = .cosine

    @Option(help: "When the lr changes (timm's sched_on_updates): updates (every step; warm-up to lr, cosine after it) or epochs (once at each epoch's start, as the RecursiveMix code's adjust_learning_rate, utils.py:177-196: lr·e/(w+1) for epochs e ≤ w, so the warm-up never reaches lr, then step, or cosine 0.5(1+cos((e−1)π/E)) not shifted by the warm-up).")
    public var schedOn: LRSchedule.SteppedOn = .updates

    @Option(help: "Epochs at which the step schedule multiplies the lr by --lr-decay, comma-separated and increasing.",
            check: FlagCheck("increasing epoch numbers ≥ 1") { m in m.allSatisfy { $0 >= 1 } && zip(m, m.dropFirst()).allSatisfy { $0 < $1 } })
    public var milestones: [Int] = []

    @Option(help: "Factor of the step schedule.", check: .number("in (0, 1] (a factor that lowers the lr)") { $0 > 0 && $0 <= 1 })
    public var lrDecay = 0.1

    public func validate() throws {
        if warmupEpochs > Double(epochs) {
            throw ValidationError("--warmup-epochs must be in [0, --epochs \(epochs)], got \(warmupEpochs)")
        }
        if let last = milestones.last, last > epochs {
            throw ValidationError("--milestones must be epoch numbers in 1...--epochs \(epochs), got '\(milestones.flagText!)'")
        }
        if schedOn == .epochs && warmupEpochs.rounded() != warmupEpochs {
            throw ValidationError("--warmup-epochs \(warmupEpochs) with --sched-on epochs: must be a whole number of epochs "
                                  + "(the lr is set once per epoch; the RecursiveMix code's --warmup is an int, main.py:39)")
        }
        if lrSchedule == .cosine && !milestones.isEmpty {
            throw ValidationError("--milestones \(milestones.flagText!) needs --lr-schedule step (the schedule is cosine)")
        }
    }
}

/// `--model-ema`: a moving average of the weights, evaluated and checkpointed beside them.
public struct WeightAverageSettings: SettingsGroup {
    public static let scope = SettingScope.training
    public init() {}

    @Option(help: ArgumentHelp("Keep an exponential moving average of the weights with this decay (timm's ModelEmaV3; e.g. 0.9998), evaluated each epoch (val_top1_ema), checkpointed, written as final_ema.safetensors.", valueName: "decay"),
            check: fraction)
    public var modelEma: Double?

    @Flag(help: "With --model-ema: timm's decay warm-up, min(decay, 1 − (1 + step)^(−2/3)).")
    public var modelEmaWarmup = false

    public func validate() throws {
        if modelEmaWarmup && modelEma == nil { throw ValidationError("--model-ema-warmup needs --model-ema DECAY") }
    }
}

/// How the ranks all-reduce the gradients.
public struct AllReduceSettings: SettingsGroup {
    public static let scope = SettingScope.training
    public init() {}

    @Option(help: "Gradient bucket size for the all-reduce, MiB.", check: .number("in (0, 4096]") { $0 > 0 && $0 <= 4096 })
    public var bucketMB = 25.0

    @Flag(help: "All-reduce gradients after backward instead of overlapping it.")
    public var noOverlap = false

    @Option(help: "Gradients on the wire: fp32, or bf16 (half the bytes; each partial sum rounded to bfloat16, as PyTorch DDP's bf16_compress_hook), for slow networks.")
    public var allreduceDtype = AllReduceDtype.fp32
}

/// `--allreduce-dtype`: the gradients' type in the all-reduce.
public enum AllReduceDtype: String, Sendable, CaseIterable, ExpressibleByArgument, FlagText {
    case fp32, bf16
}

/// Equal on every rank, but a resumed run may change them: they do not change the training it continues.
public struct ResumableSettings: SettingsGroup {
    public static let scope = SettingScope.resumable
    public init() {}

    @Option(help: "Stop after this many optimizer steps (quick runs).", check: .range(1...Int.max))
    public var maxSteps: Int?

    @Option(help: "Compare a parameter checksum across ranks every N steps (0: never).", check: .range(0...Int.max))
    public var checkEvery = 200

    @Option(help: ArgumentHelp("Append the epoch's running means so far (loss, train top-1 and top-5 over every rank) and the lr to RUN_DIR/iterations.jsonl after steps 0, N, 2N, … of each epoch, as the RecursiveMix code logs every print_freq iterations (main.py:237), for `rmtrain plot` beside their logs (default: 100 with --sched-on epochs, their print_freq, main.py:49; else off; 0: off).", valueName: "n"),
            check: .range(0...1_000_000_000))
    public var logInterval: Int?

    @Option(help: ArgumentHelp(
        "Batch size for evaluation (default: --batch-size, as timm's validation_batch_size).",
        discussion: "Every layer keeps buffers for the largest batch it has seen: a larger evaluation batch grows them all."),
            check: positiveCount)
    public var evalBatchSize: Int?
}

/// The mixing method (RecursiveMix follows the authors' code by default; flags give the paper's or the
/// original release's variant). Where the paper and the code differ, the help says so.
public struct MixingSettings: SettingsGroup {
    public static let scope = SettingScope.training
    public init() {}

    @Option(help: "Mixing: none, mixup, cutmix, mixup+cutmix (timm conventions), rm (RecursiveMix).")
    public var mix: MixMethod = .none

    @Option(help: "RM: historical area u ~ U[0, α] per batch; λ is recomputed from the clipped box (code: 0.5).",
            check: .number("in (0, 1] (the largest historical area fraction)") { $0 > 0 && $0 <= 1 })
    public var rmAlpha = 0.5

    @Option(help: "RM: weight ω of the consistency loss ω·(1−λ)·CE(H′(RoI), softmax(p_hist)) (code default 0.5; CIFAR recipe 0.1). The paper calls it KL; the code's soft CE has the same gradient.",
            check: .number("in [0, 1000]") { $0 >= 0 && $0 <= 1000 })
    public var rmOmega = 0.5

    @Option(help: "RM: history resize, nearest (PyTorch's legacy rule, the code's default) or bilinear (align_corners).")
    public var rmInterp: InterpolationMode = .nearest

    @Option(help: "RM: per-epoch (reset each epoch, as the code does) or persistent (kept across epochs).")
    public var rmHistory: HistoryMode = .perEpoch

    @Flag(help: "RM: the consistency head reuses the classifier fc (code: separate fc_roi).")
    public var rmShareHead = false

    @Flag(help: "RM: reproduce the original release, whose pasted box was the transpose of the RoI (fixed upstream in 2023).")
    public var rmLegacyTransposedRoi = false

    @Option(help: "RM: shared (every rank draws the same box and λ, as the code) or per-rank.")
    public var rmBox: BoxDraw = .shared

    @Option(help: "Mixup: λ ~ Beta(α, α).", check: betaAlpha)
    public var mixupAlpha = 1.0

    @Option(help: "CutMix: λ ~ Beta(α, α), corrected to the clipped box.", check: betaAlpha)
    public var cutmixAlpha = 1.0

    @Option(help: "CutMix: box side ratios MIN,MAX instead of Beta (timm's cutmix_minmax).",
            check: FlagCheck("MIN,MAX with 0 < MIN < MAX < 1") { $0.lowerBound > 0 && $0.lowerBound < $0.upperBound && $0.upperBound < 1 })
    public var cutmixMinmax: ClosedRange<Double>?

    @Option(help: "Mixup/CutMix: probability of mixing a batch.", check: probability)
    public var mixProb = 1.0

    @Option(help: "mixup+cutmix: probability of CutMix.", check: probability)
    public var switchProb = 0.5

    @Option(help: "Label smoothing s.", check: fraction)
    public var smoothing = 0.0

    @Option(help: "Smoothing off-value: timm (s/K) or rm (the RecursiveMix code's s/(K−1)).")
    public var smoothingStyle: SmoothingStyle = .timm

    public func validate() throws {
        if cutmixMinmax != nil && ![.cutmix, .mixupCutmix].contains(mix) {
            throw ValidationError("--cutmix-minmax needs --mix cutmix or mixup+cutmix (the mix is \(mix.rawValue))")
        }
    }
}

/// How the data is read and augmented (shared by `train` and `eval`).
public struct DataSettings: SettingsGroup {
    public static let scope = SettingScope.training
    public init() {}

    @Option(help: "Output height and width (train: default 32 for ≤32-px images, else 224; eval and --init-weights: default the size the checkpoint or file was trained at). ≤ 32 uses the CIFAR pipeline (pad-4 crop, flip, CIFAR mean/std); larger sizes the ImageNet one (RandomResizedCrop, flip; eval resize to size/0.875 + centre crop; ImageNet mean/std).",
            check: .range(DataOptions.imageSizes))
    public var imageSize: Int?

    @Option(help: "Image folders: the evaluation folder under PATH (default: val, else test).",
            check: FlagCheck("a folder name under the data folder") { !$0.isEmpty && !$0.contains("/") })
    public var valSplit: String?

    @Option(help: "A corrupt or truncated image: skip (count it, log the first paths, replace it in training, drop it in evaluation) or fail.")
    public var badImage: BadImagePolicy = .skip

    @Flag(help: "Add ColorJitter(0.4, 0.4, 0.4) in random order and PCA lighting(0.1) (the RecursiveMix ImageNet recipe).")
    public var augPlus = false

    @Flag(help: "Drop each epoch's last partial global batch (PyTorch's drop_last). Without it the sampler pads the epoch to a multiple of the ranks with repeated samples and the last batch is smaller, except that a last batch of a single sample per rank is dropped (BatchNorm statistics from one image).")
    public var dropLast = false
}

/// Loader threads: a property of one launch (shared by `train` and `eval`).
public struct LoaderSettings: SettingsGroup {
    public static let scope = SettingScope.launch
    public init() {}

    @Option(help: "Background threads decoding and augmenting whole batches ahead of the step (0: load in the training thread).",
            check: .range(0...64))
    public var loaderThreads = 1
}

extension DataSettings {
    /// The DataPipeline module's options for these flags and `loader`'s thread count.
    public func options(loader: LoaderSettings) -> DataOptions {
        var o = DataOptions()
        o.imageSize = imageSize
        o.valSplit = valSplit
        o.badImage = badImage
        o.augPlus = augPlus
        o.loaderThreads = loader.loaderThreads
        return o
    }
}

/// Where and how often this launch writes: recorded in config.yaml, free to differ across ranks and resumes.
public struct LaunchSettings: SettingsGroup {
    public static let scope = SettingScope.launch
    public init() {}

    @Option(help: "Run directory for metrics and weights.")
    public var out = "runs/latest"

    @Option(help: "Also save a checkpoint every N steps (0: only at epoch ends and on SIGTERM/SIGUSR1).", check: .range(0...Int.max))
    public var saveEvery = 0

    @Option(help: "Step checkpoints to keep; the best by validation top-1 is kept as best.rmck.", check: positiveCount)
    public var keep = 2

    @Option(help: "zstd level of checkpoints.", check: .range(1...19))
    public var ckptLevel = 3

    @Option(help: "Seconds a collective may wait for the other ranks before the job is aborted.",
            check: .timeout)
    public var collectiveTimeout = 300.0

    @Flag(help: "Skip steps whose gradients are NaN or infinite instead of stopping.")
    public var skipNonfinite = false

    @Flag(help: "Do not write TensorBoard event files (RUN_DIR/events.out.tfevents.*; on by default, rank 0).")
    public var noTensorboard = false

    @Option(help: ArgumentHelp("Write the step loss and learning rate to TensorBoard every N steps.", valueName: "n"),
            check: .range(1...1_000_000_000))
    public var tensorboardEvery = 10
}

/// This invocation alone: never recorded in config.yaml.
public struct InvocationSettings: SettingsGroup {
    public static let scope = SettingScope.invocation
    public init() {}

    @Option(help: "BLAS and loop threads (default: OPENBLAS_NUM_THREADS, else all cores).", check: .range(1...1024))
    public var threads: Int?

    @Flag(help: "No progress line.")
    public var quiet = false

    @Option(help: "Resume: 'auto' (newest valid checkpoint in --out; a fresh --out starts at step 0) or a checkpoint file.",
            check: FlagCheck("'auto' or an existing checkpoint file") { $0 == "auto" || FileManager.default.fileExists(atPath: $0) })
    public var resume: String?

    @Flag(help: "Load only weights and BN statistics from --resume (new schedule; any world size).")
    public var resumeWeightsOnly = false

    @Flag(help: "Resume although the data differs from the checkpoint's (image counts, classes, file list); the log records the difference.")
    public var allowDataChange = false

    @Option(help: ArgumentHelp("Write the first step's averaged gradients here (verification).", visibility: .hidden))
    public var dumpGradients: String?

    @Flag(help: ArgumentHelp("Every rank writes final.rank<k>.safetensors (verification).", visibility: .hidden))
    public var saveAllRanks = false

    @Option(help: ArgumentHelp("Record every step (batch as loaded, draws, mixed batch, targets, logits, losses) and the weights before and after, for launch/checks/rm_reference.py; rank 0 only unless --trace-all-ranks. Use with --max-steps.", valueName: "dir"))
    public var trace: String?

    @Flag(help: "With --trace: every rank records, into DIR/rank<k>.")
    public var traceAllRanks = false

    public func validate() throws {
        if resumeWeightsOnly && resume == nil { throw ValidationError("--resume-weights-only needs --resume") }
        if traceAllRanks && trace == nil { throw ValidationError("--trace-all-ranks needs --trace DIR") }
    }
}
