import Data
import Foundation
import Kernels
import Layers
import Models
import Optim

/// The training loop, top to bottom: data → forward → loss → backward → SGD, then evaluation and one
/// metrics line per epoch.
public final class Trainer {
    public let config: TrainConfig
    public let model: ResNet
    public let data: DataSplits
    public let trainLoader: BatchLoader
    public let valLoader: BatchLoader
    public let optimizer: SGD
    public let schedule: LRSchedule
    private let criterion = SoftTargetCrossEntropy()
    private var targets: Tensor
    public private(set) var step = 0
    public private(set) var history: [EvalCounts] = []

    public init(config: TrainConfig) throws {
        self.config = config
        var splits = try openData(config.data)
        if let n = config.trainLimit { splits = DataSplits(train: PrefixDataset(splits.train, count: n), val: splits.val) }
        if let n = config.valLimit { splits = DataSplits(train: splits.train, val: PrefixDataset(splits.val, count: n)) }
        data = splits
        let shape = splits.train.sampleShape
        model = ResNet(config.model, inChannels: shape.channels, numClasses: splits.train.numClasses)
        model.initialize(seed: config.seed)
        trainLoader = BatchLoader(dataset: splits.train,
                                  sampler: DistributedSampler(count: splits.train.count, shuffle: true, seed: config.seed),
                                  batchSize: config.batchSize, augment: true, seed: config.seed)
        valLoader = BatchLoader(dataset: splits.val,
                                sampler: DistributedSampler(count: splits.val.count, shuffle: false, seed: config.seed),
                                batchSize: config.evalBatchSize, augment: false, seed: config.seed)
        let globalBatch = config.batchSize
        let baseLR = config.scaleLR ? LRSchedule.scaled(config.lr, globalBatch: globalBatch) : config.lr
        let perEpoch = trainLoader.batchesPerEpoch
        schedule = LRSchedule(kind: config.schedule, baseLR: baseLR,
                              warmupIterations: Int((config.warmupEpochs * Double(perEpoch)).rounded()),
                              totalIterations: perEpoch * config.epochs, iterationsPerEpoch: perEpoch,
                              milestones: config.milestones, decay: config.lrDecay)
        optimizer = SGD(parameters: model.parameters, momentum: Float(config.momentum),
                        weightDecay: Float(config.weightDecay), nesterov: config.nesterov,
                        decayNormAndBias: config.decayNormAndBias)
        targets = Tensor(shape: [config.batchSize, splits.train.numClasses])
    }

    /// Runs every epoch (or until `maxSteps`), evaluating after each and appending to RUN_DIR/metrics.jsonl.
    public func run(log: (String) -> Void = { writeLine($0) }) throws {
        try FileManager.default.createDirectory(atPath: config.outDir, withIntermediateDirectories: true)
        let metrics = try MetricsLog(path: (config.outDir as NSString).appendingPathComponent("metrics.jsonl"))
        let progress = ProgressLine(enabled: !config.quiet)
        let perEpoch = trainLoader.batchesPerEpoch
        let totalSteps = min(perEpoch * config.epochs, config.maxSteps ?? Int.max)
        let runStart = Date()
        var trainSeconds = 0.0
        for epoch in 0..<config.epochs where step < totalSteps {
            let epochStart = Date()
            var lossSum = 0.0, seen = 0, hits = 0
            var computeSeconds = 0.0
            try trainLoader.forEachBatch(epoch: epoch) { b, batch in
                guard step < totalSteps else { return }
                let t0 = Date()
                let lr = schedule.lr(at: step)
                let loss = trainStep(batch, lr: lr, hits: &hits)
                guard loss.isFinite else {
                    throw TrainingError("loss is \(loss) at epoch \(epoch + 1), step \(step + 1): lower --lr or check the data")
                }
                step += 1
                let dt = Date().timeIntervalSince(t0)
                computeSeconds += dt
                lossSum += loss * Double(batch.size)
                seen += batch.size
                let elapsed = Date().timeIntervalSince(epochStart)
                let rate = Double(seen) / max(elapsed, 1e-9)
                let remaining = Double(totalSteps - step) * elapsed / Double(b + 1)
                progress.update(epoch: epoch + 1, epochs: config.epochs, step: b + 1, steps: perEpoch,
                                loss: lossSum / Double(seen), imagesPerSec: rate, eta: remaining)
            }
            progress.finishLine()
            let trainElapsed = Date().timeIntervalSince(epochStart)
            trainSeconds += trainElapsed
            let eval = try Evaluator.evaluate(model, loader: valLoader)
            history.append(eval)
            var r = MetricsRecord()
            r.set("epoch", epoch + 1)
            r.set("step", step)
            r.set("train_loss", seen > 0 ? lossSum / Double(seen) : .nan)
            r.set("train_top1", seen > 0 ? Double(hits) / Double(seen) : .nan)
            r.set("val_loss", eval.meanLoss)
            r.set("val_top1", eval.top1Accuracy)
            r.set("val_top5", eval.top5Accuracy)
            r.set("val_images", eval.images)
            r.set("lr", schedule.lr(at: max(step - 1, 0)))
            r.set("images_per_sec", Double(seen) / max(trainElapsed, 1e-9))
            r.set("seconds", Date().timeIntervalSince(epochStart))
            r.set("world_size", 1)
            try metrics.append(r)
            log(String(format: "epoch %d/%d  train_loss %.4f  val_top1 %.2f%%  val_top5 %.2f%%  %.0f img/s  %.1fs",
                       epoch + 1, config.epochs, seen > 0 ? lossSum / Double(seen) : .nan, 100 * eval.top1Accuracy,
                       100 * eval.top5Accuracy, Double(seen) / max(trainElapsed, 1e-9), Date().timeIntervalSince(epochStart)))
        }
        try saveWeights()
        log(String(format: "done in %@; metrics: %@", ProgressLine.duration(Date().timeIntervalSince(runStart)),
                   metrics.path))
    }

    /// One optimizer step on one batch. Returns the batch's mean loss.
    @discardableResult
    public func trainStep(_ batch: Batch, lr: Double, hits: inout Int) -> Double {
        let k = data.train.numClasses
        targets.reshape([batch.size, k])
        targets.zero()
        for (i, label) in batch.labels.enumerated() { targets[i * k + label] = 1 }
        model.zeroGradients()
        let logits = model.forward(batch.images, training: true)
        hits += Trainer.countTop1(logits, batch.labels)
        let loss = criterion.forward(logits: logits, targets: targets)
        model.backward(logitsGradient: criterion.backward())
        optimizer.step(lr: Float(lr))
        return loss
    }

    static func countTop1(_ logits: Tensor, _ labels: [Int]) -> Int {
        let k = logits.count / max(labels.count, 1)
        var hits = 0
        for (i, label) in labels.enumerated() {
            let row = logits.data + i * k
            var best = 0
            for c in 1..<k where row[c] > row[best] { best = c }
            if best == label { hits += 1 }
        }
        return hits
    }

    /// Writes the trained parameters and BN buffers to RUN_DIR/final.safetensors (our layout, NHWC/OHWI).
    public func saveWeights() throws {
        let entries = model.parameters.map { SafeTensors.Entry(name: $0.name, shape: $0.value.shape, values: $0.value.array) }
            + model.buffers.map { SafeTensors.Entry(name: $0.name, shape: $0.value.shape, values: $0.value.array) }
        let path = (config.outDir as NSString).appendingPathComponent("final.safetensors")
        let blob = SafeTensors.encode(entries, metadata: ["model": config.model.rawValue, "layout": "OHWI"])
        do { try blob.write(to: URL(fileURLWithPath: path), options: .atomic) }
        catch { throw TrainingError("cannot write \(path): \(error.localizedDescription)") }
    }
}
