import ArgumentParser
import Data
import Distributed
import Mixing
import Foundation
import Models
import Optim
import Training

extension MixMethod: ExpressibleByArgument {}
extension HistoryMode: ExpressibleByArgument {}
extension BoxDraw: ExpressibleByArgument {}
extension InterpolationMode: ExpressibleByArgument {}
extension SmoothingStyle: ExpressibleByArgument {}
extension LRSchedule.Kind: ExpressibleByArgument {}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model and evaluate it after every epoch.",
        discussion: "Writes RUN_DIR/metrics.jsonl (one JSON object per epoch) and RUN_DIR/final.safetensors.")

    @Option(help: "Data set: fashion-mnist (Debian's dataset-fashion-mnist, the default), fashion-mnist:DIR, imagefolder:DIR (DIR/train/<class>/*, DIR/val or DIR/test), cifar10-bin:DIR, cifar100-bin:DIR, shards:DIR (from rmtrain pack).")
    var data = "fashion-mnist"

    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Model: \(Networks.names.joined(separator: ", ")).")
    var model = "resnet20"

    @Option(parsing: .unconditional, help: "Epochs.")
    var epochs = 3

    @Option(parsing: .unconditional, help: "Batch size per process.")
    var batchSize = 128

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Batch size for evaluation (default: --batch-size, as timm's validation_batch_size).",
        discussion: "Every layer keeps buffers for the largest batch it has seen: a larger evaluation batch grows them all."))
    var evalBatchSize: Int?

    @Option(parsing: .unconditional, help: "Base learning rate.")
    var lr = 0.1

    @Flag(help: "Scale the learning rate: lr × global batch / 256.")
    var scaleLR = false

    @Option(parsing: .unconditional, help: "Weight decay.")
    var wd = 5e-4

    @Option(parsing: .unconditional, help: "SGD momentum.")
    var momentum = 0.9

    @Flag(help: "Nesterov momentum.")
    var nesterov = false

    @Flag(help: "Exempt BatchNorm parameters and biases from weight decay (the RecursiveMix code decays all).")
    var noBNDecay = false

    @Option(parsing: .unconditional, help: "Linear warmup, in epochs (fractions allowed).")
    var warmupEpochs = 0.0

    @Option(help: "cosine (per iteration, after warmup) or step.")
    var lrSchedule: LRSchedule.Kind = .cosine

    @Option(parsing: .unconditional, help: "Epochs at which the step schedule multiplies the lr by --lr-decay, comma-separated.")
    var milestones = ""

    @Option(parsing: .unconditional, help: "Factor of the step schedule.")
    var lrDecay = 0.1

    @Option(parsing: .unconditional, help: "Random seed (initialisation, shuffling, augmentation).")
    var seed: UInt64 = 27

    @Option(help: "Run directory for metrics and weights.")
    var out = "runs/latest"

    @Option(parsing: .unconditional, help: "BLAS and loop threads (default: OPENBLAS_NUM_THREADS, else all cores).")
    var threads: Int?

    @Option(parsing: .unconditional, help: "Stop after this many optimizer steps (quick runs).")
    var maxSteps: Int?

    @Option(parsing: .unconditional, help: "Train on N samples: a class-balanced subset (⌊N/K⌋ per class, the rest spread at random; a fixed draw, the same for every --seed).")
    var trainLimit: Int?

    @Option(parsing: .unconditional, help: "Evaluate on N samples: a class-balanced subset, drawn as for --train-limit.")
    var valLimit: Int?

    @Option(help: "A YAML file of train flags (e.g. launch/configs/*.yaml, or a run's config.yaml); flags given here override it.")
    var config: String?

    @Flag(help: "No progress line.")
    var quiet = false

    @Option(parsing: .unconditional, help: "Gradient bucket size for the all-reduce, MiB.")
    var bucketMB = 25.0

    @Flag(help: "All-reduce gradients after backward instead of overlapping it.")
    var noOverlap = false

    @Option(parsing: .unconditional,
            help: "Seconds a collective may wait for the other ranks before the job is aborted.")
    var collectiveTimeout = 300.0

    @Option(parsing: .unconditional,
            help: "Compare a parameter checksum across ranks every N steps (0: never).")
    var checkEvery = 200

    @OptionGroup(title: "Mixing (RecursiveMix follows the authors' code by default; flags give the paper's or the original release's variant)")
    var mixing: MixingOptions

    @Option(parsing: .unconditional,
            help: "Also save a checkpoint every N steps (0: only at epoch ends and on SIGTERM/SIGUSR1).")
    var saveEvery = 0

    @Option(parsing: .unconditional, help: "Step checkpoints to keep; the best by validation top-1 is kept as best.rmck.")
    var keep = 2

    @Option(parsing: .unconditional, help: "zstd level of checkpoints (1–19).")
    var ckptLevel = 3

    @Option(help: "Resume: 'auto' (newest valid checkpoint in --out, if any) or a checkpoint file.")
    var resume: String?

    @Flag(help: "Load only weights and BN statistics from --resume (new schedule; any world size).")
    var resumeWeightsOnly = false

    @Option(help: ArgumentHelp("Keep an exponential moving average of the weights with this decay (timm's ModelEmaV3; e.g. 0.9998), evaluated each epoch (val_top1_ema), checkpointed, written as final_ema.safetensors.", valueName: "decay"))
    var modelEma: Double?

    @Flag(help: "With --model-ema: timm's decay warm-up, min(decay, 1 − (1 + step)^(−2/3)).")
    var modelEmaWarmup = false

    @Option(help: ArgumentHelp("Start from these weights (safetensors under torchvision's names: torchvision, timm, `rmtrain export`; F32, F16 or BF16). A classifier for another number of classes is re-initialised; the log names every tensor skipped.", valueName: "file"))
    var initWeights: String?

    @Flag(help: "Resume although the data differs from the checkpoint's (image counts, classes, file list); the log records the difference.")
    var allowDataChange = false

    @Flag(name: .customLong("skip-nonfinite"), help: "Skip steps whose gradients are NaN or infinite instead of stopping.")
    var skipNonFinite = false

    @Flag(help: "Do not write TensorBoard event files (RUN_DIR/events.out.tfevents.*; on by default, rank 0).")
    var noTensorboard = false

    @Option(help: ArgumentHelp("Write the step loss and learning rate to TensorBoard every N steps.", valueName: "n"))
    var tensorboardEvery = 10

    @Flag(help: "BatchNorm in eval mode while training (running statistics, frozen).")
    var freezeBN = false

    @Option(help: ArgumentHelp("Write the first step's averaged gradients here (verification).", visibility: .hidden))
    var dumpGradients: String?

    @Flag(help: ArgumentHelp("Every rank writes final.rank<k>.safetensors (verification).", visibility: .hidden))
    var saveAllRanks = false

    @Option(help: ArgumentHelp("Record every step (batch as loaded, draws, mixed batch, targets, logits, losses) and the weights before and after, for launch/checks/rm_reference.py; rank 0 only unless --trace-all-ranks. Use with --max-steps.", valueName: "dir"))
    var trace: String?

    @Flag(help: "With --trace: every rank records, into DIR/rank<k>.")
    var traceAllRanks = false

    func validate() throws {
        if !Networks.names.contains(model) {
            throw ValidationError("--model must be one of \(Networks.names.joined(separator: ", ")), got \(model)")
        }
        try FlagCheck.integer("--epochs", epochs, 1...1_000_000)
        try FlagCheck.integer("--tensorboard-every", tensorboardEvery, 1...1_000_000_000)
        try FlagCheck.integer("--batch-size", batchSize, 1...1_000_000)
        if let evalBatchSize { try FlagCheck.integer("--eval-batch-size", evalBatchSize, 1...1_000_000) }
        try FlagCheck.positive("--lr", lr)
        try FlagCheck.number("--wd", wd, "in [0, 1)") { $0 >= 0 && $0 < 1 }
        try FlagCheck.number("--momentum", momentum, "in [0, 1)") { $0 >= 0 && $0 < 1 }
        try FlagCheck.number("--warmup-epochs", warmupEpochs, "in [0, --epochs \(epochs)]") { $0 >= 0 && $0 <= Double(epochs) }
        try FlagCheck.number("--lr-decay", lrDecay, "in (0, 1] (a factor that lowers the lr)") { $0 > 0 && $0 <= 1 }
        if let threads { try FlagCheck.integer("--threads", threads, 1...1024) }
        if let maxSteps { try FlagCheck.integer("--max-steps", maxSteps, 1...Int.max) }
        if let trainLimit { try FlagCheck.integer("--train-limit", trainLimit, 1...Int.max) }
        if let valLimit { try FlagCheck.integer("--val-limit", valLimit, 1...Int.max) }
        try FlagCheck.number("--bucket-mb", bucketMB, "in (0, 4096]") { $0 > 0 && $0 <= 4096 }
        try FlagCheck.number("--collective-timeout", collectiveTimeout, "in (0, 86400] seconds") { $0 > 0 && $0 <= 86_400 }
        try FlagCheck.integer("--save-every", saveEvery, 0...Int.max)
        try FlagCheck.integer("--keep", keep, 1...1_000_000)
        try FlagCheck.integer("--ckpt-level", ckptLevel, 1...19)
        try FlagCheck.integer("--check-every", checkEvery, 0...Int.max)
        if resumeWeightsOnly && resume == nil { throw ValidationError("--resume-weights-only needs --resume") }
        if let resume, resume != "auto", !FileManager.default.fileExists(atPath: resume) {
            throw ValidationError("--resume: no checkpoint at \(resume)")
        }
        if let modelEma { try FlagCheck.number("--model-ema", modelEma, "in [0, 1)") { $0 >= 0 && $0 < 1 } }
        if modelEmaWarmup && modelEma == nil { throw ValidationError("--model-ema-warmup needs --model-ema DECAY") }
        if let initWeights, !FileManager.default.fileExists(atPath: initWeights) {
            throw ValidationError("--init-weights: no file at \(initWeights)")
        }
        if traceAllRanks && trace == nil { throw ValidationError("--trace-all-ranks needs --trace DIR") }
        let m = try parsedMilestones()
        if lrSchedule == .cosine && !m.isEmpty {
            throw ValidationError("--milestones \(milestones) needs --lr-schedule step (the schedule is cosine)")
        }
        if mixing.cutmixMinMax != nil && ![.cutmix, .mixupCutmix].contains(mixing.mix) {
            throw ValidationError("--cutmix-minmax needs --mix cutmix or mixup+cutmix (the mix is \(mixing.mix.rawValue))")
        }
    }

    func parsedMilestones() throws -> [Int] {
        if milestones.isEmpty { return [] }
        let m = try milestones.split(separator: ",").map {
            guard let m = Int($0.trimmingCharacters(in: .whitespaces)), m >= 1, m <= epochs else {
                throw ValidationError("--milestones must be comma-separated epoch numbers in 1...--epochs \(epochs), got '\(milestones)'")
            }
            return m
        }
        guard zip(m, m.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw ValidationError("--milestones must increase, got '\(milestones)'")
        }
        return m
    }

    func run() throws {
        let world = try World.start(collectiveTimeout: collectiveTimeout, threads: threads)
        defer { world.finish() }
        try world.reportingErrors {
            try train(world)
        }
    }

    /// The run's settings from the flags (what config.yaml records and `--config` reads back).
    func makeConfig() throws -> TrainConfig {
        var c = TrainConfig()
        c.data = data
        c.dataOptions = dataOptions.options
        c.dataOptions.shouldStop = { Preemption.requested }
        c.model = model
        c.epochs = epochs
        c.batchSize = batchSize
        c.evalBatchSize = evalBatchSize ?? batchSize
        c.lr = lr
        c.scaleLR = scaleLR
        c.weightDecay = wd
        c.momentum = momentum
        c.nesterov = nesterov
        c.decayNormAndBias = !noBNDecay
        c.warmupEpochs = warmupEpochs
        c.schedule = lrSchedule
        c.milestones = try parsedMilestones()
        c.lrDecay = lrDecay
        c.seed = seed
        c.outDir = out
        c.maxSteps = maxSteps
        c.trainLimit = trainLimit
        c.valLimit = valLimit
        c.quiet = quiet
        c.bucketMB = bucketMB
        c.overlapCommunication = !noOverlap
        c.collectiveTimeout = collectiveTimeout
        c.checkEvery = checkEvery
        c.freezeBN = freezeBN
        try mixing.apply(to: &c)
        c.saveEvery = saveEvery
        c.keep = keep
        c.checkpointLevel = Int32(ckptLevel)
        c.resume = resume
        c.resumeWeightsOnly = resumeWeightsOnly
        c.skipNonFinite = skipNonFinite
        c.tensorboard = !noTensorboard
        c.tensorboardEvery = tensorboardEvery
        c.allowDataChange = allowDataChange
        c.initWeights = initWeights
        c.modelEMA = modelEma
        c.modelEMAWarmup = modelEmaWarmup
        c.dumpGradientsPath = dumpGradients
        c.saveAllRanks = saveAllRanks
        c.tracePath = trace
        c.traceAllRanks = traceAllRanks
        return c
    }

    private func train(_ world: World) throws {
        let comm = world.comm
        let c = try makeConfig()
        let trainer: Trainer
        do { trainer = try Trainer(config: c, comm: comm) }
        catch is DataInterrupted {
            // A preemption signal while an image folder was listed: every rank received it (mpirun forwards
            // it), none has trained; the job can be requeued as for any preemption.
            writeLine("rmtrain: \(PreemptedError(checkpoint: nil, step: 0).description) (while listing the data)")
            world.finish()
            Foundation.exit(Preemption.exitCode)
        }
        if comm.rank == 0 {
            let parameters: Int = trainer.model.parameterCount
            let ranks = "\(comm.size) rank\(comm.size == 1 ? "" : "s")"
            let what = "\(model) (\(parameters) parameters) on \(trainer.data.train.name) (\(trainer.data.train.count) images)"
            writeLine("rmtrain: \(what), evaluated on \(trainer.data.val.name) (\(trainer.data.val.count) images), "
                      + "\(ranks) × batch \(batchSize) = global batch \(trainer.globalBatch), "
                      + "\(trainer.trainLoader.batchesPerEpoch) steps/epoch, \(world.threads) threads per rank, out \(out)")
        }
        Preemption.install()
        do { try trainer.run() }
        catch let e as PreemptedError {
            if comm.rank == 0 { writeLine("rmtrain: \(e.description)") }
            world.finish()
            Foundation.exit(Preemption.exitCode)
        }
    }
}
