import ArgumentParser
import DataPipeline
import Foundation
import Training

extension PackOptions.Encoding: ExpressibleByArgument {}

/// `rmtrain pack`: converts an image folder into packed shards for `--data shards:DIR` (few large files
/// read sequentially instead of millions of small ones). Safe to interrupt and re-run: finished shards
/// whose checksums verify are kept, the others rebuilt.
struct PackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack",
        abstract: "Pack an image folder into shards (--data shards:DIR reads them).",
        discussion: "Writes DIR/train-NNNNN-of-NNNNN.rms, DIR/val-…rms and DIR/index.json (classes, counts, a CRC-32 per shard). Images keep the folder's order, so training from the shards sees the same samples as from the folder.")

    @Option(help: "Source: imagefolder:PATH (PATH/train/<class>/…, PATH/val or PATH/test).")
    var data: String

    @Option(help: "Output folder.")
    var out: String

    @Option(parsing: .unconditional,
            help: "Resize images whose short side is longer to this many pixels (default: keep sizes).")
    var shortSide: Int?

    @Option(parsing: .unconditional, help: "Shards for the train split (the evaluation split gets a proportional number).")
    var shards = 16

    @Option(help: "jpeg (JPEGs kept byte for byte when not resized, others re-encoded) or raw (decoded RGB).")
    var format: PackOptions.Encoding = .jpeg

    @Option(parsing: .unconditional, help: "JPEG quality of re-encoded images.")
    var quality = 90

    @Option(parsing: .unconditional, help: "Shards packed in parallel (default: all cores).")
    var threads: Int?

    @Option(help: "The evaluation folder under PATH (default: val, else test).")
    var valSplit: String?

    @Option(help: "An unreadable image: skip (stored as a bad record, skipped when training) or fail.")
    var badImage: BadImagePolicy = .skip

    @Option(parsing: .unconditional, help: "Pack only the first N images of each split (quick runs).")
    var limit: Int?

    @Flag(help: "No progress bar.")
    var quiet = false

    func validate() throws {
        guard data.hasPrefix("imagefolder:"), data.count > "imagefolder:".count else {
            throw ValidationError("--data must be imagefolder:PATH, got '\(data)'")
        }
        if let shortSide, shortSide < 8 { throw ValidationError("--short-side must be at least 8, got \(shortSide)") }
        if shards < 1 || shards > 99_999 { throw ValidationError("--shards must be between 1 and 99999, got \(shards)") }
        if quality < 1 || quality > 100 { throw ValidationError("--quality must be between 1 and 100, got \(quality)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
    }

    func run() throws {
        var o = PackOptions()
        o.shortSide = shortSide
        o.shards = shards
        o.encoding = format
        o.quality = quality
        o.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        o.valSplit = valSplit
        o.badImage = badImage
        o.limit = limit
        let root = String(data.dropFirst("imagefolder:".count))
        let log = BadImageLog()
        let bar = ProgressBar(enabled: !quiet)
        let start = Date()
        let reused = try Packer(source: root, out: out, options: o, badImages: log).run { bar.update($0) }
        let kept = reused.values.reduce(0, +)
        writeLine(String(format: "pack: wrote %@ in %.1fs%@%@", (out as NSString).appendingPathComponent("index.json"),
                         Date().timeIntervalSince(start), kept > 0 ? ", \(kept) finished shards kept from an earlier run" : "",
                         log.count > 0 ? ", \(log.count) bad images stored as bad records" : ""))
    }
}

/// `pack train  [=========>          ]  45%  27000/60000  2300 img/s  ETA 0:14`, rewritten in place on a
/// terminal; when piped, one line per 10 %.
final class ProgressBar: @unchecked Sendable {
    private let enabled: Bool
    private let isTerminal = isatty(STDOUT_FILENO) != 0
    private let lock = NSLock()
    private var split = "", started = Date(), lastPrint = Date.distantPast, lastDecile = -1, done = false

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ p: PackProgress) {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        if p.split != split { split = p.split; started = Date(); lastDecile = 0; done = false }
        let finished = p.done >= p.total
        guard !done else { return }
        if finished { done = true }
        let fraction = p.total > 0 ? Double(p.done) / Double(p.total) : 1
        if isTerminal {
            guard finished || Date().timeIntervalSince(lastPrint) > 0.2 else { return }
        } else {
            let decile = Int(fraction * 10)
            guard decile > lastDecile else { return }
            lastDecile = decile
        }
        lastPrint = Date()
        let elapsed = Date().timeIntervalSince(started)
        let rate = Double(p.done) / max(elapsed, 1e-9)
        let eta = rate > 0 ? Double(p.total - p.done) / rate : 0
        let width = 24, filled = Int(fraction * Double(width))
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" + String(repeating: " ", count: width - filled - 1) : "")
        let name = p.split.padding(toLength: max(5, p.split.count), withPad: " ", startingAt: 0)
        let text = "pack \(name) [\(bar)] " + String(format: "%3d%%  %d/%d  %.0f img/s  ETA %d:%02d", Int(fraction * 100),
                                                             p.done, p.total, rate, Int(eta) / 60, Int(eta) % 60)
        FileHandle.standardOutput.write(Data(((isTerminal ? "\r" : "") + text + (isTerminal && !finished ? "" : "\n")).utf8))
    }
}
