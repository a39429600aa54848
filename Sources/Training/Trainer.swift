import Checkpoint
import Data
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
    public private(set) var step = 0
    public private(set) var history: [EvalCounts] = []
    func record(_ eval: EvalCounts) { history.append(eval) }
    /// Counts, classes and file-list hashes of both splits (`DataFingerprint`): compared across ranks at
    /// start and kept in checkpoints.
    public let dataFingerprint: [String]
    /// What a resume accepted that the run log must record (other data behind --allow-data-change).
    var resumeNotes: [String] = []

    public init(config: TrainConfig, comm: Communicator = SingleProcess()) throws {
        self.config = config
        self.comm = comm
        var splits = try openData(config.data, options: config.dataOptions)
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
        trainLoader = BatchLoader(dataset: splits.train,
                                  sampler: DistributedSampler(count: splits.train.count, worldSize: comm.size, rank: comm.rank,
                                                              shuffle: true, seed: config.seed, dropLast: config.dataOptions.dropLast),
                                  batchSize: config.batchSize, augment: true, seed: config.seed,
                                  threads: config.dataOptions.loaderThreads, badImages: splits.badImages,
                                  badImagePolicy: config.dataOptions.badImage,
                                  lastBatch: config.dataOptions.dropLast ? .drop : .dropSingle)
        valLoader = BatchLoader(dataset: splits.val,
                                sampler: DistributedSampler(count: splits.val.count, worldSize: comm.size, rank: comm.rank,
                                                            shuffle: false, seed: config.seed, pad: false),
                                batchSize: config.evalBatchSize, augment: false, seed: config.seed,
                                threads: config.dataOptions.loaderThreads, badImages: splits.badImages,
                                badImagePolicy: config.dataOptions.badImage)
        try Trainer.checkCombinations(config, train: splits.train, stepsPerEpoch: trainLoader.batchesPerEpoch,
                                      worldSize: comm.size)
        let globalBatch = config.batchSize * comm.size
        let baseLR = config.scaleLR ? LRSchedule.scaled(config.lr, globalBatch: globalBatch) : config.lr
        let perEpoch = trainLoader.batchesPerEpoch
        schedule = LRSchedule(kind: config.schedule, baseLR: baseLR,
                              warmupIterations: Int((config.warmupEpochs * Double(perEpoch)).rounded()),
                              totalIterations: perEpoch * config.epochs, iterationsPerEpoch: perEpoch,
                              milestones: config.milestones, decay: config.lrDecay)
        engine = StepEngine(model: model, numClasses: splits.train.numClasses, sampleShape: shape,
                            comm: comm, config: config)
        optimizer = SGD(parameters: engine.trainableParameters, momentum: Float(config.momentum),
                        weightDecay: Float(config.weightDecay), nesterov: config.nesterov,
                        decayNormAndBias: config.decayNormAndBias)
        try Consensus.checkSameConfiguration(config.fingerprint, comm: comm)
        try Consensus.checkSameData(dataFingerprint, comm: comm)
        try Consensus.broadcastModel(model, extra: engine.extraParameters, comm: comm)
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
                                + "--batch-size \(config.batchSize)\(config.dataOptions.dropLast ? " and --drop-last" : "") "
                                + "(lower --batch-size or the ranks, or drop --drop-last)")
        }
        if let mm = config.cutmixMinMax {
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

    func file(_ name: String) -> String { (config.outDir as NSString).appendingPathComponent(name) }

    /// Runs every epoch (or until `maxSteps`), evaluating after each; rank 0 appends to RUN_DIR/metrics.jsonl.
    /// Resumes from a checkpoint when asked, saves at epoch ends and every `saveEvery` steps, and on
    /// SIGTERM/SIGUSR1 saves and throws `PreemptedError`.
    public func run(log printLine: ((String) -> Void)? = nil) throws {
        let isRoot = comm.rank == 0
        var metrics: MetricsLog?
        var csv: MetricsCSV?
        if isRoot {
            do {
                try FileManager.default.createDirectory(atPath: config.outDir, withIntermediateDirectories: true)
                try config.resolvedYAML.write(toFile: file("config.yaml"), atomically: true, encoding: .utf8)
            } catch { throw TrainingError("cannot write to run directory \(config.outDir): \(error.localizedDescription)") }
        }
        let runLog = RunLog(path: isRoot ? file("train.log") : nil)
        let log = printLine ?? { runLog.line($0) }
        var position = Position()
        var resumedSums = EpochSums()
        if let (p, sums) = try restore() { position = p; resumedSums = sums }
        if isRoot {
            if config.resume != nil {
                // Rows of epochs after the checkpoint were written by the run that stopped: the resumed run
                // writes them again, so the files read as one run.
                try MetricsLog.dropEpochs(after: position.epoch, path: file("metrics.jsonl"))
                try MetricsCSV.dropEpochs(after: position.epoch, path: file("metrics.csv"))
            }
            metrics = try MetricsLog(path: file("metrics.jsonl"))
            csv = try MetricsCSV(path: file("metrics.csv"))
            runLog.record("rmtrain train, \(comm.size) rank(s), configuration in \(file("config.yaml"))")
            for note in resumeNotes { warn(note); runLog.record("warning: " + note) }
        }
        // A preemption signal that came before the first step (while the data was indexed, say): all ranks
        // agree, nothing was trained, and the job can be requeued as for any preemption.
        if try anyRank(Preemption.requested, "agree on an early preemption") {
            throw PreemptedError(checkpoint: nil, step: position.step)
        }
        step = position.step
        history = []
        let tracer = try startTrace()
        engine.tracer = tracer
        let progress = ProgressLine(enabled: isRoot && !config.quiet, log: isRoot ? runLog : nil)
        let perEpoch = trainLoader.batchesPerEpoch
        let totalSteps = min(perEpoch * config.epochs, config.maxSteps ?? Int.max)
        let runStart = Date()
        let report = { (r: MetricsRecord, line: String) throws in
            try metrics?.append(r)
            try csv?.append(r)
            if isRoot { log(line) }
        }
        // A run preempted while it evaluated saved the finished epoch without its evaluation: do it first.
        if position.batch == 0 && position.epoch > 0 && position.valTop1.count < position.epoch {
            try endEpoch(position.epoch - 1, sums: resumedSums, at: position, saveAtEnd: true, position: &position, report: report)
        }
        for epoch in position.epoch..<config.epochs where step < totalSteps {
            let epochStart = Date()
            let firstBatch = epoch == position.epoch ? position.batch : 0
            var sums = EpochSums()
            if firstBatch > 0 { sums = resumedSums } else { engine.startEpoch() }
            try trainLoader.forEachBatch(epoch: epoch, from: firstBatch) { b, batch in
                guard step < totalSteps else { return }
                let lr = schedule.lr(at: step)
                let stats = try engine.step(batch, step: step)
                if step == 0, let path = config.dumpGradientsPath, isRoot {
                    let grads = engine.trainableParameters.map {
                        SafeTensors.Entry(name: $0.name, shape: $0.grad.shape, values: $0.grad.array)
                    }
                    try writeTensors(grads, to: path)
                }
                guard stats.loss.isFinite || config.skipNonFinite else {
                    comm.abort("loss is \(stats.loss) at epoch \(epoch + 1), step \(step + 1) on rank \(comm.rank): "
                               + "lower --lr, check the data, or pass --skip-nonfinite", code: 5)
                }
                if stats.gradientsFinite {
                    optimizer.step(lr: Float(lr))
                    try tracer?.commit(step: step + 1, epoch: epoch + 1, batch: b, lr: lr, applied: true,
                                        parameters: engine.trainableParameters, buffers: model.buffers)
                } else if config.skipNonFinite {
                    try tracer?.commit(step: step + 1, epoch: epoch + 1, batch: b, lr: lr, applied: false,
                                        parameters: engine.trainableParameters, buffers: model.buffers)
                    if isRoot { warn("step \(step + 1): gradients are not finite; step skipped (--skip-nonfinite)") }
                } else {
                    // Every rank holds the same averaged gradients, so every rank stops here alike.
                    throw TrainingError("gradients are not finite at epoch \(epoch + 1), step \(step + 1) (loss on rank "
                                        + "\(comm.rank): \(stats.loss)); nothing was saved from this step: lower --lr, "
                                        + "or pass --skip-nonfinite")
                }
                step += 1
                sums.add(stats)
                // Global loss for the progress line and the preemption vote: one tiny all-reduce per step.
                var g = [stats.loss.isFinite ? stats.loss * Double(batch.size) : 0, Double(batch.size),
                         Preemption.requested ? 1 : 0]
                try comm.allReduceSum(&g, "reduce step loss")
                sums.globalLoss += g[0]
                sums.globalSeen += g[1]
                if config.checkEvery > 0 && step % config.checkEvery == 0 {
                    try Consensus.checkParametersAgree(engine.trainableParameters, step: step, comm: comm)
                }
                let here = Position(epoch: epoch, batch: b + 1, step: step, valTop1: position.valTop1)
                var saved = sums
                saved.trainSeconds += Date().timeIntervalSince(epochStart)
                if g[2] > 0 {
                    progress.finishLine()
                    let path = try saveCheckpoint(here, sums: saved)
                    throw PreemptedError(checkpoint: path)
                }
                if config.saveEvery > 0 && step % config.saveEvery == 0 {
                    try saveCheckpoint(here, sums: saved)
                }
                let elapsed = Date().timeIntervalSince(epochStart)
                progress.update(epoch: epoch + 1, epochs: config.epochs, step: b + 1, steps: perEpoch,
                                loss: sums.globalLoss / max(sums.globalSeen, 1), imagesPerSec: sums.globalSeen / max(elapsed, 1e-9),
                                eta: Double(totalSteps - step) * elapsed / Double(b + 1 - firstBatch))
            }
            progress.finishLine()
            sums.trainSeconds += Date().timeIntervalSince(epochStart)
            let finished = step >= perEpoch * (epoch + 1)
            let lastPosition = Position(epoch: finished ? epoch + 1 : epoch, batch: finished ? 0 : min(perEpoch, step - epoch * perEpoch),
                                        step: step, valTop1: position.valTop1)
            try endEpoch(epoch, sums: sums, at: lastPosition, saveAtEnd: finished, position: &position, report: report)
        }
        try Consensus.averageBuffers(model.buffers, comm: comm)
        if let tracer {
            try tracer.writeWeights("weights-final.safetensors", parameters: engine.trainableParameters, buffers: model.buffers)
            try tracer.finish()
        }
        if config.saveAllRanks {
            try saveWeights(name: "final.rank\(comm.rank).safetensors")
        }
        if isRoot {
            try saveWeights()
            let best = position.valTop1.enumerated().max { $0.element <= $1.element }
            log(String(format: "done in %@; final val top-1 %.2f%% (best %.2f%% at epoch %d); metrics: %@",
                       ProgressLine.duration(Date().timeIntervalSince(runStart)), 100 * (position.valTop1.last ?? 0),
                       100 * (best?.element ?? 0), (best?.offset ?? 0) + 1, metrics?.path ?? ""))
        }
    }

    /// `--trace`: the tracer of this rank (rank 0, or every rank with `--trace-all-ranks`), its meta.json and
    /// the weights before the first step written; nil when not tracing.
    func startTrace() throws -> StepTracer? {
        guard let dir = config.tracePath, comm.rank == 0 || config.traceAllRanks else { return nil }
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
    public func saveWeights(name: String = "final.safetensors") throws {
        let entries = model.parameters.map { SafeTensors.Entry(name: $0.name, shape: $0.value.shape, values: $0.value.array) }
            + model.buffers.map { SafeTensors.Entry(name: $0.name, shape: $0.value.shape, values: $0.value.array) }
        try FileManager.default.createDirectory(atPath: config.outDir, withIntermediateDirectories: true)
        try writeTensors(entries, to: (config.outDir as NSString).appendingPathComponent(name),
                         metadata: ["model": config.model, "layout": "OHWI"])
    }

    private func writeTensors(_ entries: [SafeTensors.Entry], to path: String, metadata: [String: String] = [:]) throws {
        let blob = SafeTensors.encode(entries, metadata: metadata)
        do { try blob.write(to: URL(fileURLWithPath: path), options: .atomic) }
        catch { throw TrainingError("cannot write \(path): \(error.localizedDescription)") }
    }
}

/// Per-epoch sums on one rank (reduced across ranks and checkpointed by name), and their reduction.
struct EpochSums: NamedSums {
    var lossSum = 0.0, seen = 0.0, hits = 0.0, waitSeconds = 0.0
    /// Seconds spent training this epoch (on this rank), across resumes.
    var trainSeconds = 0.0
    /// The whole job's loss and images so far (the progress line's; not checkpointed).
    var globalLoss = 0.0, globalSeen = 0.0

    static var fields: [NamedSumsField<Self>] { [("loss_sum", \.lossSum), ("seen", \.seen), ("hits", \.hits),
                                                ("wait_seconds", \.waitSeconds), ("train_seconds", \.trainSeconds)] }
    static let checkpointPrefix = "epoch_sums"
    /// Checkpoints written before named sums kept them as one positional array of that name.
    static let legacy = (name: "epoch_sums", order: fields.map(\.name))

    mutating func add(_ s: StepStats) {
        lossSum += s.loss.isFinite ? s.loss * Double(s.batchSize) : 0
        seen += Double(s.batchSize)
        hits += Double(s.top1Hits)
        waitSeconds += s.waitSeconds
    }

    struct Reduced { var meanLoss: Double, top1: Double, images: Double, waitSeconds: Double, badImages: Int }

    /// Summed over the ranks, with each rank's count of unreadable images (one all-reduce).
    func reduced(_ comm: Communicator, badImages: Int) throws -> Reduced {
        var v = values + [Double(badImages)]
        try comm.allReduceSum(&v, "reduce epoch statistics and bad-image counts")
        var all = self
        all.values = Array(v.dropLast())
        let n = max(all.seen, 1)
        return Reduced(meanLoss: all.lossSum / n, top1: all.hits / n, images: all.seen,
                       waitSeconds: all.waitSeconds / Double(comm.size), badImages: Int(v.last!))
    }
}
