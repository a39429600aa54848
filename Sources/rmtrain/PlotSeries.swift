import Foundation
import Training

/// One curve set of `rmtrain plot`: per-epoch values (`train_loss`, `val_top1`, `lr`; NaN where a source has
/// none) and per-iteration running means (`train_loss`, `train_top1` against the iteration counted from the
/// run's start), from a run folder or from a log of the RecursiveMix code.
struct PlotSeries {
    let name: String
    let epochs: [Double]
    let values: [String: [Double]]
    let iterations: [Double]
    let iterationValues: [String: [Double]]

    static let epochKeys = ["train_loss", "val_top1", "lr"]
    static let iterationKeys = ["train_loss", "train_top1"]

    /// A run folder (metrics.jsonl, and iterations.jsonl when it ran with --log-interval) or an authors' log file.
    static func load(_ path: String) throws -> PlotSeries {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TrainingError("plot: \(path) does not exist (give run directories or logs of the RecursiveMix code)")
        }
        let name = (path as NSString).standardizingPath.split(separator: "/").last.map(String.init) ?? path
        return isDirectory.boolValue ? try run(path, name: name) : try authorsLog(path, name: name)
    }

    /// JSON lines of `path` as dictionaries of numbers; `required` keys must be integers on every line.
    static func rows(_ path: String, required: [String], what: String) throws -> [[String: Double]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw TrainingError("plot: cannot read \(path)") }
        return try text.split(separator: "\n").enumerated().map { n, line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  required.allSatisfy({ obj[$0] is Int }) else {
                throw TrainingError("plot: \(path) line \(n + 1) is not \(what)")
            }
            return obj.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }

    static func run(_ dir: String, name: String) throws -> PlotSeries {
        let path = (dir as NSString).appendingPathComponent("metrics.jsonl")
        var byEpoch: [Int: [String: Double]] = [:]
        // A resumed run may log an epoch twice: the later line wins.
        for row in try rows(path, required: ["epoch"], what: "a metrics record") { byEpoch[Int(row["epoch"]!)] = row }
        guard !byEpoch.isEmpty else { throw TrainingError("plot: \(path) has no records") }
        let epochs = byEpoch.keys.sorted()
        let values = Dictionary(uniqueKeysWithValues: epochKeys.map { key in (key, epochs.map { byEpoch[$0]?[key] ?? .nan }) })
        var iterations: [Double] = [], iterationValues: [String: [Double]] = [:]
        let iterationsPath = (dir as NSString).appendingPathComponent("iterations.jsonl")
        if FileManager.default.fileExists(atPath: iterationsPath) {
            let rows = try rows(iterationsPath, required: ["epoch", "iteration", "iterations"], what: "an iterations.jsonl row")
            iterations = rows.map { ($0["epoch"]! - 1) * $0["iterations"]! + $0["iteration"]! }
            for key in iterationKeys { iterationValues[key] = rows.map { $0[key] ?? .nan } }
        }
        return PlotSeries(name: name, epochs: epochs.map(Double.init), values: values, iterations: iterations,
                          iterationValues: iterationValues)
    }

    /// The authors' log: test top-1 per epoch, each epoch's lr (its first line's), and the running loss and
    /// train top-1 of every logged iteration. They log no per-epoch training loss.
    static func authorsLog(_ path: String, name: String) throws -> PlotSeries {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw TrainingError("plot: cannot read \(path)") }
        let log = try AuthorsLog(text, name: "plot: \(path)")
        let epochs = Set(log.iterations.map(\.epoch) + log.evaluations.map(\.epoch)).sorted()
        let top1 = Dictionary(log.evaluations.map { ($0.epoch, $0.top1) }, uniquingKeysWith: { _, later in later })
        let lr = Dictionary(log.iterations.map { ($0.epoch, $0.lr) }, uniquingKeysWith: { first, _ in first })
        let values = ["train_loss": epochs.map { _ in Double.nan }, "val_top1": epochs.map { top1[$0] ?? .nan },
                      "lr": epochs.map { lr[$0] ?? .nan }]
        return PlotSeries(name: name, epochs: epochs.map(Double.init), values: values,
                          iterations: log.iterations.map { Double($0.global) },
                          iterationValues: ["train_loss": log.iterations.map(\.loss), "train_top1": log.iterations.map(\.top1)])
    }
}
