import ArgumentParser
import Data
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
        var config = TrainConfig()
        config.mix = mix
        config.rmAlpha = rmAlpha
        config.seed = seed
        config.batchSize = images
        let shape = ds.sampleShape
        let k = ds.numClasses
        // The object the training step uses, built from the same flags (no model: no consistency head).
        let method = makeMixingMethod(config, classes: k, sample: shape, model: nil, rank: 0)
        method.startEpoch()
        let loader = BatchLoader(dataset: ds, sampler: DistributedSampler(count: ds.count, shuffle: true, seed: seed),
                                 batchSize: images, augment: true, seed: seed)
        let targets = Tensor(shape: [images, k]), zeros = Tensor(shape: [images, k])
        let s = scale ?? max(1, 128 / shape.width)
        let cellW = max(shape.width * s, 120) + 8, textH = 3 * 10 + 4, cellH = shape.height * s + textH + 20
        var canvas = Canvas(width: cellW * images + 8, height: cellH * steps + 30)
        canvas.drawText("\(mix.rawValue) on \(ds.name): one row per step, top-3 classes of each mixed label", x: 6, y: 8)
        let norm = ds.normalization
        try loader.forEachBatch(epoch: 0, until: steps) { b, batch in
            let record = method.mix(images: batch.images, labels: batch.labels, targets: targets, step: b)
            method.remember(images: batch.images, targets: targets, logits: zeros)
            let box = record.mixed ? record.pasteBox ?? record.box : nil, lam = record.lam
            let y0 = 30 + b * cellH
            canvas.drawText(String(format: "step %d  lam %.3f", b + 1, lam), x: 6, y: y0 - 2, color: .init(90, 90, 90))
            for i in 0..<batch.size {
                let x0 = 6 + i * cellW, iy = y0 + 8
                canvas.drawImage(batch.images, index: i, x: x0, y: iy, scale: s, mean: norm.mean, std: norm.std)
                if let box { canvas.drawBox(x1: box.x1, y1: box.y1, x2: box.x2, y2: box.y2, imageX: x0, imageY: iy, scale: s) }
                let row = (0..<k).map { (c: $0, w: targets[i * k + $0]) }.sorted { $0.w > $1.w }.prefix(3)
                for (j, e) in row.enumerated() where e.w > 0 {
                    let name = ds.classNames[e.c].prefix(11)
                    canvas.drawText(String(format: "%.2f %@", e.w, String(name)), x: x0, y: iy + shape.height * s + 4 + j * 10)
                }
            }
        }
        try canvas.writePNG(to: out)
        writeLine("rmtrain: wrote \(out) (\(canvas.width)×\(canvas.height))")
    }
}
