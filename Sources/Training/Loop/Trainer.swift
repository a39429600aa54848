import Checkpoint
import DataPipeline
import Distributed
import Foundation
import Kernels
import Layers
import Mixing
import Models
import Optim

/// The training loop, top to bottom: data → forward → loss → backward → gradient all-reduce → SGD,
/// then evaluation over every rank's slice and one metrics line per epoch (rank 0).
public final class Trainer {
    public let config: TrainConfig
    public let comm: Communicator
    public let model: any Model
    public let data: DataSplits
    public let trainLoader: BatchLoader
    public let valLoader: BatchLoader
    public let optimizer: SGD
    public let schedule: LRSchedule
    let engine: StepEngine
    /// Where the run stands: where a run resumed from a checkpoint saved now would continue (the one copy).
    var position = Position()
    /// The optimizer steps taken (the global step, across resumes).
    public var step: Int { position.step }
    /// Counts, classes and file-list hashes of both splits (`DataFingerprint`): compared across ranks at
    /// start and kept in checkpoints.
    public let dataFingerprint: [String]
    /// What a resume accepted that the run log must record (other data behind --allow-data-change).
    var resumeNotes: [String] = []
    /// `--model-ema`: the average of the weights (nil without the flag).
    let ema: WeightEMA?
    /// What the start of the run must log (weights loaded, skipped, re-initialised).
    let startNotes: [String]

    /// Opens the data, builds the model (and its pretrained weights), the loaders, the schedule, the step
    /// and the optimizer, then checks that every rank agrees on the settings and the data and starts from
    /// rank 0's weights. Throws `TrainingError` naming the flag or file at fault, before any step.
    public init(config: TrainConfig, comm: Communicator = SingleProcess()) throws {
        self.config = config
        self.comm = comm
        try Trainer.checkPrecision(config.precision)
        let pretrained = try config.initWeights.flatMap { try InitWeights.input($0) }
        var options = config.dataOptions
        options.shouldStop = { Preemption.requested }      // a preemption while a folder is listed stops it
        // The pretrained weights' image size is the default.
        options.imageSize = ModelInput.imageSize(flag: config.imageSize, recorded: pretrained, data: config.data)
        data = try Trainer.openSplits(config, options: options)
        dataFingerprint = DataFingerprint.lines(train: data.train, val: data.val)
        (model, startNotes) = try Trainer.buildModel(config, data: data.train, pretrained: pretrained, options: options)
        let reading = BatchLoader.Reading(options, badImages: data.badImages)
        trainLoader = .training(data.train, batchSize: config.batchSize, seed: config.seed, dropLast: config.dropLast,
                                worldSize: comm.size, rank: comm.rank, reading: reading)
        valLoader = .evaluation(data.val, batchSize: config.evaluationBatchSize, worldSize: comm.size, rank: comm.rank,
                                reading: reading)
        try Trainer.checkCombinations(config, train: data.train, stepsPerEpoch: trainLoader.batchesPerEpoch,
                                      worldSize: comm.size)
        schedule = Trainer.schedule(config, stepsPerEpoch: trainLoader.batchesPerEpoch, worldSize: comm.size)
        let mixing = makeMixingMethod(config.mixing, batchSize: config.batchSize, seed: config.seed,
                                      classes: data.train.numClasses, sample: data.train.sampleShape, model: model, rank: comm.rank)
        engine = StepEngine(model: model, mixing: mixing, comm: comm, options: StepEngine.Options(config.run, config.allReduce))
        optimizer = SGD(parameters: engine.trainableParameters, momentum: Float(config.momentum),
                        weightDecay: Float(config.wd), nesterov: config.nesterov,
                        decayNormAndBias: config.decayNormAndBias)
        try Trainer.agreeAcrossRanks(config, data: dataFingerprint, model: model, extra: engine.extraParameters, comm: comm)
        let (model, channels) = (self.model, data.train.sampleShape.channels)
        ema = try config.modelEma.map { try WeightEMA(of: model, inChannels: channels, decay: $0, warmup: config.modelEmaWarmup) }
        ema?.model.use(config.precision)
    }

    /// `--precision bf16-mixed` refused where it would not run in bf16: a CPU without AVX512-BF16 (named),
    /// oneDNN capped below it, or the portable convolutions.
    public static func checkPrecision(_ precision: Precision) throws {
        guard precision == .bf16Mixed else { return }
        if let why = precision.unsupportedReason {
            throw TrainingError("--precision bf16-mixed: \(why); use --precision fp32")
        }
        if ConvBackend.current == .portable {
            throw TrainingError("--precision bf16-mixed needs oneDNN's convolutions, but RMTRAIN_CONV=portable is set")
        }
    }

    /// `--data` opened, cut to `--train-limit` / `--val-limit` (class-balanced subsets).
    static func openSplits(_ config: TrainConfig, options: DataOptions) throws -> DataSplits {
        let splits = try openData(config.data, options: options)
        let train = config.trainLimit.map { SubsetDataset.classBalanced(splits.train, count: $0) } ?? splits.train
        let val = config.valLimit.map { SubsetDataset.classBalanced(splits.val, count: $0) } ?? splits.val
        return DataSplits(train: train, val: val, badImages: splits.badImages)
    }

    /// `--model` for this data, initialised from `--seed`, then `--init-weights` loaded into it; with what the
    /// run's start must log about the weights (loaded, skipped, re-initialised, the image size they set).
    static func buildModel(_ config: TrainConfig, data train: Dataset, pretrained: InputSpec?,
                           options: DataOptions) throws -> (any Model, [String]) {
        let shape = train.sampleShape
        guard let model = Networks.make(config.model, inChannels: shape.channels, numClasses: train.numClasses) else {
            throw TrainingError("--model \(config.model): unknown (one of \(Networks.names.joined(separator: ", ")))")
        }
        model.initialize(seed: config.seed)
        model.use(config.precision)
        guard let path = config.initWeights else { return (model, []) }
        var notes = try InitWeights.load(path, into: model, classNames: train.classNames).map { "--init-weights: " + $0 }
        notes.append("--init-weights: loaded \(path)")
        if let pretrained, config.imageSize == nil, options.imageSize != nil {
            notes.append("--init-weights: image size \(pretrained.imageSize), the file's (--image-size overrides it)")
        }
        if let pretrained, let note = try ModelInput.note(data: train, recorded: pretrained, flag: config.imageSize,
                                                         source: path, refuseUnasked: false) {
            notes.append("--init-weights: " + note)
        }
        return (model, notes)
    }

    /// The learning-rate schedule over the run's steps (`--lr` scaled by the global batch with `--scale-lr`).
    static func schedule(_ config: TrainConfig, stepsPerEpoch perEpoch: Int, worldSize: Int) -> LRSchedule {
        let baseLR = config.scaleLR ? LRSchedule.scaled(config.lr, globalBatch: config.batchSize * worldSize) : config.lr
        return LRSchedule(kind: config.lrSchedule, on: config.schedOn, baseLR: baseLR,
                          warmupIterations: Int((config.warmupEpochs * Double(perEpoch)).rounded()),
                          totalIterations: perEpoch * config.epochs, iterationsPerEpoch: perEpoch,
                          milestones: config.milestones, decay: config.lrDecay)
    }

    /// Every rank has the same settings and data (else an error naming the rank that differs), and starts
    /// from rank 0's weights (the consistency head's too).
    static func agreeAcrossRanks(_ config: TrainConfig, data: [String], model: any Model, extra: [Parameter],
                                 comm: Communicator) throws {
        try Consensus.checkSameConfiguration(config.fingerprint, comm: comm)
        try Consensus.checkSameData(data, comm: comm)
        try Consensus.broadcastModel(model, extra: extra, comm: comm)
    }

    public var globalBatch: Int { config.batchSize * comm.size }

    /// Whether `flag` holds on any rank: one tiny all-reduce, so that every rank decides alike.
    func anyRank(_ flag: Bool, _ op: String) throws -> Bool {
        var v = [flag ? 1.0 : 0]
        try comm.allReduceSum(&v, op)
        return v[0] > 0
    }

    /// Settings that each look fine but cannot work with this data, refused before the first step with both
    /// sides named.
    static func checkCombinations(_ config: TrainConfig, train: Dataset, stepsPerEpoch: Int, worldSize: Int) throws {
        var classes = Set<Int>()
        for i in 0..<train.count where classes.count < 2 { classes.insert(train.label(i)) }
        if classes.count < 2 {
            throw TrainingError("the training set \(train.name) holds \(train.count) image(s) of a single class: "
                                + "nothing to learn (check --data, or raise --train-limit)")
        }
        if stepsPerEpoch == 0 {
            throw TrainingError("an epoch has no step: \(train.count) training image(s) over \(worldSize) rank(s) with "
                                + "--batch-size \(config.batchSize)\(config.dropLast ? " and --drop-last" : "") "
                                + "(lower --batch-size or the ranks, or drop --drop-last)")
        }
        if let mm = config.cutmixMinmax {
            let shape = train.sampleShape
            for (side, n) in [("height", shape.height), ("width", shape.width)] {
                let sides = BoxSampler.minMaxSides(n, minRatio: mm.lowerBound, maxRatio: mm.upperBound)
                if sides.isEmpty {
                    let hi = Int(Double(n) * mm.upperBound)
                    throw TrainingError("--cutmix-minmax \(mm.lowerBound),\(mm.upperBound) on \(shape.height)×\(shape.width) images: "
                                        + "box \(side)s would be drawn from int(\(n)·\(mm.lowerBound)) = \(sides.lowerBound) up to, not including, "
                                        + "int(\(n)·\(mm.upperBound)) = \(hi): an empty range (widen --cutmix-minmax or raise --image-size)")
                }
            }
        }
    }

    func file(_ name: String) -> String { (config.out as NSString).appendingPathComponent(name) }

    /// `--trace`: the tracer of this rank (rank 0, or every rank with `--trace-all-ranks`), its meta.json and
    /// the weights before the first step written; nil when not tracing.
    func startTrace() throws -> StepTracer? {
        guard let dir = config.trace, comm.rank == 0 || config.traceAllRanks else { return nil }
        let shape = data.train.sampleShape
        let meta: [String: Any] = [
            "model": config.model, "num_classes": data.train.numClasses,
            "image_shape": [shape.height, shape.width, shape.channels], "rank": comm.rank, "world_size": comm.size,
            "steps_per_epoch": trainLoader.batchesPerEpoch, "first_step": step + 1,
            "settings": Dictionary(config.settings.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 }),
            "parameters": engine.trainableParameters.map { ["name": $0.name, "is_norm_or_bias": $0.isNormOrBias] },
            "buffers": model.buffers.map(\.name),
            // Whether bf16-mixed multiplied in bfloat16 here: the replay then runs its reference under autocast.
            "bf16_kernels": config.precision == .bf16Mixed && Precision.bf16Kernels.runs,
        ]
        let tracer = try StepTracer(directory: config.traceAllRanks ? (dir as NSString).appendingPathComponent("rank\(comm.rank)") : dir,
                                    meta: meta, parameters: engine.trainableParameters, buffers: model.buffers)
        try tracer.writeWeights("weights-initial.safetensors")
        return tracer
    }

    /// Writes the trained parameters and BN buffers to RUN_DIR/final.safetensors (our layout, NHWC/OHWI).
    public func saveWeights(name: String = "final.safetensors", of model: (any Model)? = nil) throws {
        let model = model ?? self.model
        let entries = model.parameters.map { SafeTensors.Entry(name: $0.name, shape: $0.value.shape, values: $0.value.array) }
            + model.buffers.map { SafeTensors.Entry(name: $0.name, shape: $0.value.shape, values: $0.value.array) }
        try FileManager.default.createDirectory(atPath: config.out, withIntermediateDirectories: true)
        try writeTensors(entries, to: (config.out as NSString).appendingPathComponent(name),
                         metadata: ModelInput.metadata(ModelInput.spec(of: data.train))
                            .merging(["model": config.model, "layout": "OHWI"]) { $1 })
    }

    func writeTensors(_ entries: [SafeTensors.Entry], to path: String, metadata: [String: String] = [:]) throws {
        let blob = SafeTensors.encode(entries, metadata: metadata)
        do { try blob.write(to: URL(fileURLWithPath: path), options: .atomic) }
        catch { throw TrainingError("cannot write \(path): \(error.localizedDescription)") }
    }
}

/// Per-epoch sums on one rank (reduced across ranks and checkpointed by name), and their reduction.
struct EpochSums: NamedSums {
    var lossSum = 0.0, seen = 0.0, hits = 0.0, waitSeconds = 0.0
    /// Seconds the loop waited for the loader this epoch (on this rank), across resumes.
    var dataWaitSeconds = 0.0
    /// Seconds spent training this epoch (on this rank), across resumes.
    var trainSeconds = 0.0
    /// The whole job's loss and images so far (the progress line's; not checkpointed).
    var globalLoss = 0.0, globalSeen = 0.0

    static var fields: [NamedSumsField<Self>] { [("loss_sum", \.lossSum), ("seen", \.seen), ("hits", \.hits),
                                                ("wait_seconds", \.waitSeconds), ("train_seconds", \.trainSeconds),
                                                ("data_wait_seconds", \.dataWaitSeconds)] }
    static let checkpointPrefix = "epoch_sums"
    /// Checkpoints written before named sums kept them as one positional array of that name.
    static let legacy = (name: "epoch_sums", order: ["loss_sum", "seen", "hits", "wait_seconds", "train_seconds"])

    mutating func add(_ s: StepStats) {
        lossSum += s.loss.isFinite ? s.loss * Double(s.batchSize) : 0
        seen += Double(s.batchSize)
        hits += Double(s.top1Hits)
        waitSeconds += s.waitSeconds
    }

    struct Reduced { var meanLoss: Double, top1: Double, images: Double, waitSeconds: Double, dataWaitSeconds: Double, badImages: Int }

    /// Summed over the ranks, with each rank's count of unreadable images (one all-reduce).
    func reduced(_ comm: Communicator, badImages: Int) throws -> Reduced {
        let (all, bad) = try comm.allReduceSum(self, BadImageCount(count: Double(badImages)),
                                               "reduce epoch statistics and bad-image counts")
        let n = max(all.seen, 1)
        return Reduced(meanLoss: all.lossSum / n, top1: all.hits / n, images: all.seen,
                       waitSeconds: all.waitSeconds / Double(comm.size), dataWaitSeconds: all.dataWaitSeconds / Double(comm.size),
                       badImages: Int(bad.count))
    }
}

/// Each rank's count of unreadable images, summed with the epoch's statistics.
struct BadImageCount: NamedSums {
    var count = 0.0
    static var fields: [NamedSumsField<Self>] { [("bad_images", \.count)] }
}
