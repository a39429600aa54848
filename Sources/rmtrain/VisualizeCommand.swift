import ArgumentParser
import DataPipeline
import Foundation
import Imaging
import Kernels
import Mixing
import Training

/// `rmtrain visualize`: a PNG grid of consecutive RecursiveMix batches, so the recursion can be seen:
/// one row per step, each image with its pasted box and the top-3 classes of its mixed label.
struct VisualizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "visualize",
        abstract: "Draw consecutive mixed batches (RecursiveMix by default) with their mixed labels, as a PNG.")

    @Option(help: "Data set (as for train).") var data = "fashion-mnist"
    @Option(help: "Mixing to show: rm, mixup, cutmix, mixup+cutmix.") var mix: MixMethod = .rm
    @Option(parsing: .unconditional, help: "Consecutive steps (rows).") var steps = 5
    @Option(parsing: .unconditional, help: "Images per batch (columns).") var images = 6
    @Option(parsing: .unconditional, help: "RM α.") var rmAlpha = 0.5
    @Option(parsing: .unconditional, help: "Seed.") var seed: UInt64 = 27
    @Option(parsing: .unconditional, help: "Pixel scale of each image (default: about 128 px per image).") var scale: Int?
    @Option(help: "Output PNG.") var out = "mixed.png"

    func validate() throws {
        if steps < 1 || images < 1 { throw ValidationError("--steps and --images must be at least 1") }
        if mix == .none { throw ValidationError("--mix none has nothing to show") }
    }

    func run() throws {
        let splits = try openData(data)
        let ds = splits.train
        var flags = MixingSettings.defaults
        flags.mix = mix
        flags.rmAlpha = rmAlpha
        let shape = ds.sampleShape
        let k = ds.numClasses
        // The object the training step uses, built from the same flags (no model: no consistency head).
        let method = makeMixingMethod(flags, batchSize: images, seed: seed, classes: k, sample: shape, model: nil, rank: 0)
        method.startEpoch()
        let loader = BatchLoader(dataset: ds, sampler: DistributedSampler(count: ds.count, shuffle: true, seed: seed),
                                 batchSize: images, augment: true, seed: seed)
        let targets = Tensor(shape: [images, k]), zeros = Tensor(shape: [images, k])
        var picture = MixedBatchPicture(title: "\(mix.rawValue) on \(ds.name): one row per step, top-3 classes of each mixed label",
                                        rows: steps, images: images, sample: shape, classNames: ds.classNames,
                                        normalization: ds.normalization, scale: scale)
        try loader.forEachBatch(epoch: 0, until: steps) { b, batch in
            let record = method.mix(images: batch.images, labels: batch.labels, targets: targets, step: b)
            method.remember(images: batch.images, targets: targets, logits: zeros)
            picture.addRow(b, step: b + 1, x: batch.images, record: record, targets: targets)
        }
        let canvas = picture.canvas
        try canvas.writePNG(to: out)
        writeLine("rmtrain: wrote \(out) (\(canvas.width)×\(canvas.height))")
    }
}
