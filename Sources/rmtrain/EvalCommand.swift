import ArgumentParser
import Checkpoint
import DataPipeline
import Distributed
import Foundation
import Kernels
import Training
import Yams

/// `rmtrain eval --checkpoint PATH --data …`: top-1/top-5 of a checkpoint over an evaluation split, on
/// one rank or many (each rank a disjoint slice; counts summed exactly).
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a checkpoint: top-1 and top-5 over the evaluation split.")

    @Option(help: "Checkpoint file (.rmck).") var checkpoint: String
    @Option(help: "Data set (as for train); its evaluation split is used. Default: the run's own data (config.yaml beside the checkpoint), else fashion-mnist.")
    var data: String?
    @OptionGroup var dataSettings: DataSettings
    @OptionGroup var loader: LoaderSettings
    @Option(help: "Batch size per rank.", check: .range(1...1_000_000)) var batchSize = 256
    @Option(help: "Evaluate on N images: a class-balanced subset (fixed draw), the same that train --val-limit N uses.",
            check: .range(1...Int.max)) var valLimit: Int?
    @Flag(help: "Print one JSON object.") var json = false

    /// `--data`, else the run's own data as its config.yaml beside the checkpoint records it (said in one line),
    /// else fashion-mnist (train's default).
    func evaluationData(note: Bool) throws -> String {
        if let data { return data }
        let yaml = (URL(fileURLWithPath: checkpoint).deletingLastPathComponent().path as NSString)
            .appendingPathComponent("config.yaml")
        guard let text = try? String(contentsOfFile: yaml, encoding: .utf8),
              let spec = (try? Yams.load(yaml: text) as? [String: Any])?["data"] as? String else { return "fashion-mnist" }
        if note { Console.errorLine("rmtrain: --data not given: evaluating on the run's own data, \(spec) (\(yaml))") }
        return spec
    }

    func run() throws {
        let world = try World.start(collectiveTimeout: 600, threads: nil)
        defer { world.finish() }
        try world.reportingErrors {
            let comm = world.comm
            let state = try CheckpointStore.read(checkpoint)
            let data = try evaluationData(note: comm.rank == 0)
            // The checkpoint's input (size, resize, normalisation, classes) is the default; --image-size overrides it.
            let recorded = state.header.input
            var options = dataSettings.options(loader: loader)
            options.imageSize = ModelInput.imageSize(flag: dataSettings.imageSize, recorded: recorded,
                                                     configuration: state.header.configuration, data: data)
            var val: Dataset
            let badImages: BadImageLog
            if let recorded {
                (val, badImages) = try EvaluationData.open(data, options: options, classNames: recorded.classNames)
            } else {
                let splits = try openData(data, options: options)
                (val, badImages) = (splits.val, splits.badImages)
            }
            if let note = try ModelInput.note(data: val, recorded: recorded, flag: dataSettings.imageSize, source: checkpoint),
               comm.rank == 0 {
                Console.errorLine("rmtrain: \(note)")
            }
            if let valLimit { val = SubsetDataset.classBalanced(val, count: valLimit) }
            let model = try Evaluator.model(from: state, path: checkpoint, data: val)
            let loader = BatchLoader.evaluation(val, batchSize: batchSize, worldSize: comm.size, rank: comm.rank,
                                                reading: BatchLoader.Reading(options, badImages: badImages))
            let size = val.sampleShape.height
            // On stderr, in place when it is a terminal: stdout holds the result (one JSON object with --json).
            let progress = ProgressLine(enabled: comm.rank == 0, stream: .standardError)
            let started = Date()
            var counts = try Evaluator.evaluate(model, loader: loader) { b, n in
                let t = Date().timeIntervalSince(started)
                progress.evaluation(batch: b, batches: n, imagesPerSec: Double(min(b * batchSize * comm.size, val.count)) / max(t, 1e-9),
                                    eta: t / Double(b) * Double(n - b))
            }
            progress.clear()
            try counts.reduce(comm)
            guard comm.rank == 0 else { return }
            if json {
                var r = MetricsRecord()
                r.set("checkpoint", checkpoint)
                r.set("model", state.header.model)
                r.set("step", state.header.step)
                r.set("data", val.name)
                r.set("image_size", size)
                r.set("images", counts.images)
                r.set("top1", counts.top1Accuracy)
                r.set("top5", counts.top5Accuracy)
                r.set("loss", counts.meanLoss)
                r.set("world_size", comm.size)
                writeLine(r.json)
            } else {
                writeLine(String(format: "%@ (step %d) on %@ at %d×%d: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%d images, %d rank%@)",
                                 checkpoint, state.header.step, val.name, size, size, 100 * counts.top1Accuracy,
                                 100 * counts.top5Accuracy, counts.meanLoss, counts.images, comm.size, comm.size == 1 ? "" : "s"))
            }
        }
    }
}
