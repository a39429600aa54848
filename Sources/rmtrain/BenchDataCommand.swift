import ArgumentParser
import DataPipeline
import Foundation
import Kernels
import Training

/// `rmtrain bench-data`: images/s of the training data pipeline (read, decode, augment, normalise into
/// batches) per loader thread, with no model — and, with `--pillow`, the same work done by Pillow in the
/// same run, as a ratio.
struct BenchDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-data",
        abstract: "Measure data-loading images/s per loader thread (release build; not a test).",
        discussion: "Example: rmtrain bench-data --data imagefolder:../shared/data/imagenette-mini --image-size 224 --pillow launch/bench/pillow_loader.py")

    @Option(help: "Data sets to measure (repeat the flag): imagefolder:PATH, shards:DIR, cifar10-bin:PATH, …")
    var data: [String] = []

    @Option(help: "Output size (default: the data set's).", check: .range(DataOptions.imageSizes))
    var imageSize: Int?

    @Flag(help: "Add colour jitter and lighting.")
    var augPlus = false

    @Option(parsing: .unconditional, help: "Loader thread counts to measure, comma-separated.")
    var loaderThreads = "1,2"

    @Option(help: "Batch size.", check: .range(1...1_000_000))
    var batchSize = 64

    @Option(help: "Timed seconds per measurement (after one warm-up epoch).", check: .number("in (0, 3600]") { $0 > 0 && $0 <= 3600 })
    var seconds = 5.0

    @Option(help: "Measurements per setting; the best is reported (the machine is shared).", check: .range(1...1_000))
    var repeats = 3

    @Option(help: "Python script doing the same work with Pillow (launch/bench/pillow_loader.py); run on the first --data, which must be an image folder.")
    var pillow: String?

    @Option(help: "Python interpreter for --pillow.")
    var python = "python3"

    @Flag(help: "Print one JSON object per measurement instead of a table.")
    var json = false

    func validate() throws {
        if data.isEmpty { throw ValidationError("--data: name at least one data set") }
        if threadCounts().isEmpty { throw ValidationError("--loader-threads must be a list of counts ≥ 1, got '\(loaderThreads)'") }
        if pillow != nil, !(data.first ?? "").hasPrefix("imagefolder:") {
            throw ValidationError("--pillow compares against the first --data, which must be imagefolder:PATH")
        }
    }

    func threadCounts() -> [Int] { loaderThreads.split(separator: ",").compactMap { Int($0) }.filter { $0 >= 1 } }

    func run() throws {
        var options = DataOptions()
        options.imageSize = imageSize
        options.augPlus = augPlus
        var oneThread: Double?
        for spec in data {
            let t0 = Date()
            let splits = try openData(spec, options: options)
            let openSeconds = Date().timeIntervalSince(t0)
            for t in threadCounts() {
                let ips = (0..<repeats).map { _ in measure(splits.train, threads: t) }.max()!
                if spec == data[0] && t == 1 { oneThread = ips }
                emit(["kind": "loader", "data": spec, "loader_threads": "\(t)", "images_per_sec": fmt(ips),
                      "images_per_sec_per_thread": fmt(ips / Double(t)), "open_seconds": fmt(openSeconds),
                      "image_size": "\(splits.train.sampleShape.height)"])
            }
        }
        if let pillow {
            let size = try openData(data[0], options: options).train.sampleShape.height
            let path = String(data[0].dropFirst("imagefolder:".count))
            let ips = try (0..<repeats).map { _ in try runPillow(pillow, path: path, size: size) }.max()!
            var fields = ["kind": "pillow", "data": data[0], "processes": "1", "images_per_sec": fmt(ips)]
            if let oneThread { fields["ratio_ours_1thread_to_pillow_1process"] = fmt(oneThread / ips) }
            emit(fields)
        }
    }

    /// Images/s of whole epochs of training batches (shuffled, augmented) on `threads` loader threads.
    private func measure(_ dataset: Dataset, threads: Int) -> Double {
        let loader = BatchLoader(dataset: dataset, sampler: DistributedSampler(count: dataset.count, shuffle: true, seed: 1),
                                 batchSize: batchSize, augment: true, seed: 1, threads: threads,
                                 badImages: BadImageLog(sink: { _ in }))
        var checksum: Float = 0
        func pass(_ epoch: Int, until deadline: Date?) -> Int {
            var n = 0
            try? loader.forEachBatch(epoch: epoch) { _, batch in
                checksum += batch.images[0]                   // touch the batch, as a consumer would
                n += batch.size
                if let deadline, Date() > deadline { throw CancellationError() }
            }
            return n
        }
        _ = pass(0, until: Date().addingTimeInterval(seconds / 2))   // warm-up: page cache, buffers
        let start = Date(), deadline = start.addingTimeInterval(seconds)
        var images = 0, epoch = 1
        while Date() < deadline { images += pass(epoch, until: deadline); epoch += 1 }
        let elapsed = Date().timeIntervalSince(start)
        if checksum.isNaN { writeLine("bench-data: NaN in a batch") }
        return Double(images) / elapsed
    }

    /// Runs the Pillow script; it prints one JSON line with images_per_sec.
    private func runPillow(_ script: String, path: String, size: Int) throws -> Double {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, script, "--data", path, "--image-size", "\(size)", "--seconds", "\(seconds)",
                       "--batch-size", "\(batchSize)"] + (augPlus ? ["--aug-plus"] : [])
        let pipe = Pipe()
        p.standardOutput = pipe
        do { try p.run() } catch { throw DataError("--pillow: cannot run \(python) \(script): \(error.localizedDescription)") }
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let line = out.split(separator: "\n").last(where: { $0.contains("images_per_sec") }),
              let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let ips = obj["images_per_sec"] as? Double else {
            throw DataError("--pillow: \(script) failed (exit \(p.terminationStatus)); is Pillow installed? pip install pillow numpy")
        }
        return ips
    }

    private func fmt(_ x: Double) -> String { String(format: "%.3f", x) }

    private func emit(_ fields: [String: String]) {
        if json {
            let body = fields.keys.sorted().map { k in
                let v = fields[k]!
                return Double(v) != nil ? "\"\(k)\": \(v)" : "\"\(k)\": \"\(v)\""
            }
            writeLine("{" + body.joined(separator: ", ") + "}")
        } else {
            writeLine(fields.keys.sorted().map { "\($0)=\(fields[$0]!)" }.joined(separator: "  "))
        }
    }
}
