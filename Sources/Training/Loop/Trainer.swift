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
    public internal(set) var step = 0
    public internal(set) var history: [EvalCounts] = []
    func record(_ eval: EvalCounts) { history.append(eval) }
    /// Counts, classes and file-list hashes of both splits (`DataFingerprint`): compared across ranks at
    /// start and kept in checkpoints.
    public let dataFingerprint: [String]
    /// What a resume accepted that the run log must record (other data behind --allow-data-change).
    var resumeNotes: [String] = []
    /// `--model-ema`: the average of the weights (nil without the flag).
    let ema: WeightEMA?
    /// What the start of the run must log (weights loaded, skipped, re-initialised).
    var startNotes: [String] = []

    public init(config: TrainConfig, comm: Communicator = SingleProcess()) throws {
        self.config = config
        self.comm = comm
        var options = config.dataOptions
        options.shouldStop = { Preemption.requested }      // a preemption while a folder is listed stops it
        let pretrained = try config.initWeights.flatMap { try InitWeights.input($0) }
        // The pretrained weights' image size is the default.
        options.imageSize = ModelInput.imageSize(flag: config.imageSize, recorded: pretrained, data: config.data)
        var splits = try openData(config.data, options: options)
        if let n = config.trainLimit {
            splits = DataSplits(train: SubsetDataset.classBalanced(splits.train, count: n), val: splits.val, badImages: splits.badImages)
        }
        if let n = config.valLimit {
            splits = DataSplits(train: splits.train, val: SubsetDataset.classBalanced(splits.val, count: n), badImages: splits.badImages)
        }
        data = splits
        dataFingerprint = DataFingerprint.lines(train: splits.train, val: splits.val)
        let shape = splits.train.sampleShape
        guard let network = Networks.make(config.model, inChannels: shape.channels, numClasses: splits.train.numClasses) else {
            throw TrainingError("--model \(config.model): unknown (one of \(Networks.names.joined(separator: ", ")))")
        }
        model = network
        model.initialize(seed: config.seed)
        if let path = config.initWeights {
            startNotes += try InitWeights.load(path, into: model, classNames: splits.train.classNames).map { "--init-weights: " + $0 }
            startNotes.append("--init-weights: loaded \(path)")
            if let pretrained, config.imageSize == nil, options.imageSize != nil {
                startNotes.append("--init-weights: image size \(pretrained.imageSize), the file's (--image-size overrides it)")
            }
            if let pretrained, let note = try ModelInput.note(data: splits.train, recorded: pretrained, flag: config.imageSize,
                                                             source: path, refuseUnasked: false) {
                startNotes.append("--init-weights: " + note)
            }
        }
        trainLoader = BatchLoader(dataset: splits.train,
                                  sampler: DistributedSampler(count: splits.train.count, worldSize: comm.size, rank: comm.rank,
                                                              shuffle: true, seed: config.seed, dropLast: config.dropLast),
                                  batchSize: config.batchSize, augment: true, seed: config.seed,
                                  threads: config.loaderThreads, badImages: splits.badImages,
                                  badImagePolicy: config.badImage,
                                  lastBatch: config.dropLast ? .drop : .dropSingle)
        valLoader = BatchLoader(dataset: splits.val,
                                sampler: DistributedSampler(count: splits.val.count, worldSize: comm.size, rank: comm.rank,
                                                            shuffle: false, seed: config.seed, pad: false),
                                batchSize: config.evaluationBatchSize, augment: false, seed: config.seed,
                                threads: config.loaderThreads, badImages: splits.badImages,
                                badImagePolicy: config.badImage)
        try Trainer.checkCombinations(config, train: splits.train, stepsPerEpoch: trainLoader.batchesPerEpoch,
                                      worldSize: comm.size)
        let globalBatch = config.batchSize * comm.size
        let baseLR = config.scaleLR ? LRSchedule.scaled(config.lr, globalBatch: globalBatch) : config.lr
        let perEpoch = trainLoader.batchesPerEpoch
        schedule = LRSchedule(kind: config.lrSchedule, on: config.schedOn, baseLR: baseLR,
                              warmupIterations: Int((config.warmupEpochs * Double(perEpoch)).rounded()),
                              totalIterations: perEpoch * config.epochs, iterationsPerEpoch: perEpoch,
                              milestones: config.milestones, decay: config.lrDecay)
        engine = StepEngine(model: model, numClasses: splits.train.numClasses, sampleShape: shape,
                            comm: comm, config: config)
        optimizer = SGD(parameters: engine.trainableParameters, momentum: Float(config.momentum),
                        weightDecay: Float(config.wd), nesterov: config.nesterov,
                        decayNormAndBias: config.decayNormAndBias)
        try Consensus.checkSameConfiguration(config.fingerprint, comm: comm)
        try Consensus.checkSameData(dataFingerprint, comm: comm)
        try Consensus.broadcastModel(model, extra: engine.extraParameters, comm: comm)
        if let decay = config.modelEma {
            ema = try WeightEMA(of: network, inChannels: shape.channels, decay: decay, warmup: config.modelEmaWarmup)
        } else {
            ema = nil
        }
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
        ]
        let tracer = try StepTracer(directory: config.traceAllRanks ? (dir as NSString).appendingPathComponent("rank\(comm.rank)") : dir,
                                    meta: meta)
        try tracer.writeWeights("weights-initial.safetensors", parameters: engine.trainableParameters, buffers: model.buffers)
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
