import ArgumentParser
import Checkpoint
import Data
import Distributed
import Foundation
import Training

/// `rmtrain eval --checkpoint PATH --data …`: top-1/top-5 of a checkpoint over an evaluation split, on
/// one rank or many (each rank a disjoint slice; counts summed exactly).
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a checkpoint: top-1 and top-5 over the evaluation split.")

    @Option(help: "Checkpoint file (.rmck).") var checkpoint: String
    @Option(help: "Data set (as for train); its evaluation split is used.") var data = "fashion-mnist"
    @OptionGroup var dataOptions: DataOptions
    @Option(parsing: .unconditional, help: "Batch size per rank.") var batchSize = 256
    @Option(parsing: .unconditional, help: "Evaluate on N images: a class-balanced subset (fixed draw), the same that train --val-limit N uses.") var valLimit: Int?
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        try FlagCheck.integer("--batch-size", batchSize, 1...1_000_000)
        if let valLimit { try FlagCheck.integer("--val-limit", valLimit, 1...Int.max) }
    }

    func run() throws {
        let world = try World.start(collectiveTimeout: 600, threads: nil)
        defer { world.finish() }
        try world.reportingErrors {
            let comm = world.comm
            let state = try CheckpointStore.read(checkpoint)
            let splits = try openData(data, options: dataOptions.options)
            var val: Dataset = splits.val
            if let valLimit { val = SubsetDataset.classBalanced(val, count: valLimit) }
            let model = try Evaluator.model(from: state, path: checkpoint, data: val)
            let loader = BatchLoader(dataset: val,
                                     sampler: .evaluation(count: val.count, worldSize: comm.size, rank: comm.rank),
                                     batchSize: batchSize, augment: false, seed: 0,
                                     threads: dataOptions.options.loaderThreads, badImages: splits.badImages,
                                     badImagePolicy: dataOptions.options.badImage)
            var counts = try Evaluator.evaluate(model, loader: loader)
            try counts.reduce(comm)
            guard comm.rank == 0 else { return }
            if json {
                var r = MetricsRecord()
                r.set("checkpoint", checkpoint)
                r.set("model", state.header.model)
                r.set("step", state.header.step)
                r.set("data", val.name)
                r.set("images", counts.images)
                r.set("top1", counts.top1Accuracy)
                r.set("top5", counts.top5Accuracy)
                r.set("loss", counts.meanLoss)
                r.set("world_size", comm.size)
                writeLine(r.json)
            } else {
                writeLine(String(format: "%@ (step %d) on %@: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%d images, %d rank%@)",
                                 checkpoint, state.header.step, val.name, 100 * counts.top1Accuracy,
                                 100 * counts.top5Accuracy, counts.meanLoss, counts.images, comm.size, comm.size == 1 ? "" : "s"))
            }
        }
    }
}
