import Distributed
import Foundation
import Kernels

/// One line of `metrics.jsonl`: keys in a fixed order, numbers printed exactly (shortest round-trip).
public struct MetricsRecord {
    public private(set) var fields: [(String, String)] = []
    public init() {}

    public mutating func set(_ key: String, _ value: Int) { fields.append((key, String(value))) }
    public mutating func set(_ key: String, _ value: Double) {
        fields.append((key, value.isFinite ? "\(value)" : "null"))
    }
    public mutating func set(_ key: String, _ value: String) {
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        fields.append((key, "\"\(escaped)\""))
    }

    public var json: String { "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}" }
}

/// Appends records to a JSON-lines file, flushing each line so a killed run keeps what it logged.
public final class MetricsLog {
    public let path: String
    private let handle: FileHandle

    public init(path: String) throws {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw TrainingError("cannot create \(path)")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw TrainingError("cannot open \(path) for writing") }
        handle = h
        handle.seekToEndOfFile()
    }

    /// Removes the rows of epochs after `epoch` (1-based epoch numbers; keeps rows without one).
    public static func dropEpochs(after epoch: Int, path: String) throws {
        try rewrite(path) { lines in
            lines.filter { line in
                guard let data = line.data(using: .utf8),
                      let row = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let e = row["epoch"] as? Int else { return true }
                return e <= epoch
            }
        }
    }

    public func append(_ record: MetricsRecord) throws {
        do { try handle.write(contentsOf: Data((record.json + "\n").utf8)) }
        catch { throw TrainingError("cannot write \(path): \(error.localizedDescription)") }
    }
}

/// The same records as CSV, one row per epoch, header from the first record (for spreadsheets).
public final class MetricsCSV {
    public let path: String
    private let handle: FileHandle
    private var columns: [String]

    public init(path: String) throws {
        self.path = path
        let existing = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        columns = existing.split(separator: "\n").first.map { $0.split(separator: ",").map(String.init) } ?? []
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else { throw TrainingError("cannot create \(path)") }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw TrainingError("cannot open \(path) for writing") }
        handle = h
        handle.seekToEndOfFile()
    }

    /// Removes the rows of epochs after `epoch` (the header stays).
    public static func dropEpochs(after epoch: Int, path: String) throws {
        try rewrite(path) { lines in
            guard let header = lines.first, let column = header.split(separator: ",", omittingEmptySubsequences: false)
                    .firstIndex(of: "epoch") else { return lines }
            return [header] + lines.dropFirst().filter { line in
                let cells = line.split(separator: ",", omittingEmptySubsequences: false)
                guard column < cells.count, let e = Int(cells[column]) else { return true }
                return e <= epoch
            }
        }
    }

    public func append(_ record: MetricsRecord) throws {
        var text = ""
        if columns.isEmpty {
            columns = record.fields.map(\.0)
            text += columns.joined(separator: ",") + "\n"
        }
        let values = Dictionary(record.fields, uniquingKeysWith: { a, _ in a })
        text += columns.map { key in
            let v = values[key] ?? ""
            return v.hasPrefix("\"") ? String(v.dropFirst().dropLast()) : (v == "null" ? "" : v)
        }.joined(separator: ",") + "\n"
        do { try handle.write(contentsOf: Data(text.utf8)) }
        catch { throw TrainingError("cannot write \(path): \(error.localizedDescription)") }
    }
}

/// Rewrites the lines of a text file through `transform`, atomically; a missing file is left missing.
func rewrite(_ path: String, _ transform: ([String]) -> [String]) throws {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
    let lines = text.split(separator: "\n").map(String.init)
    let kept = transform(lines)
    if kept == lines { return }
    do { try (kept.map { $0 + "\n" }.joined()).write(toFile: path, atomically: true, encoding: .utf8) }
    catch { throw TrainingError("cannot rewrite \(path): \(error.localizedDescription)") }
}

/// RUN_DIR/train.log: every line rank 0 prints (start line, warnings, summaries, resumes, preemptions, plain
/// progress lines), with timestamps. Written with write(2) on an O_APPEND descriptor, errors ignored: a full
/// file system loses log lines, never the run.
public final class RunLog: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()
    private let clock: DateFormatter = {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f
    }()

    /// With a path, the log also becomes the `Console`'s recorder: what the process prints is copied here.
    public init(path: String?) {
        fd = path.map { open($0, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644) } ?? -1
        if fd >= 0 { Console.record(to: { [self] date, line in record(line, at: date) }) }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Writes the line to the log file only.
    public func record(_ line: String, at date: Date = Date()) {
        guard fd >= 0 else { return }
        lock.withLock { Console.write("\(clock.string(from: date)) \(line)\n", fd: fd) }
    }

    /// Prints the line (and so records it, when this log is the console's recorder).
    public func line(_ line: String) { writeLine(line) }
}

/// The progress line: rewritten in place on a terminal, plain lines (every ~10 % of an epoch) when piped.
public final class ProgressLine {
    /// Where the line goes: stdout (train, whose lines are the run's log) or stderr (eval, whose stdout is its result).
    public enum Stream: Sendable { case standardOutput, standardError }
    /// In place only on a terminal of our own: under an MPI launcher stdout is a pty that mpirun forwards,
    /// often into a log file, so ranks print plain lines there.
    private let isTerminal: Bool
    private let fd: Int32
    private let enabled: Bool
    private let log: RunLog?
    private var lastLength = 0
    private var lastPrint = Date.distantPast

    public init(enabled: Bool, log: RunLog? = nil, stream: Stream = .standardOutput) {
        self.enabled = enabled
        self.log = log
        let fd = stream == .standardOutput ? STDOUT_FILENO : STDERR_FILENO
        self.fd = fd
        isTerminal = isatty(fd) != 0 && !Launcher.isUnderMPI
    }

    /// An evaluation's progress, after `prefix`: in place on a terminal only; elsewhere the line that follows
    /// (the epoch's, eval's result) says it, and a log file or --json output gets no partial lines.
    public func evaluation(_ prefix: String = "", batch: Int, batches: Int, imagesPerSec: Double, eta: Double) {
        guard enabled, isTerminal, Date().timeIntervalSince(lastPrint) >= 0.2 || batch == batches else { return }
        lastPrint = Date()
        let text = prefix + String(format: "evaluating %d/%d  %.0f img/s  ETA %@", batch, batches, imagesPerSec,
                                   ProgressLine.duration(eta))
        Console.write("\r" + text + String(repeating: " ", count: max(0, lastLength - text.count)), fd: fd)
        lastLength = text.count
    }

    /// Wipes an in-place line (an evaluation's) so that the next line starts on a clean one.
    public func clear() {
        guard enabled, isTerminal, lastLength > 0 else { return }
        Console.write("\r" + String(repeating: " ", count: lastLength) + "\r", fd: fd)
        lastLength = 0
    }

    public func update(epoch: Int, epochs: Int, step: Int, steps: Int, loss: Double, imagesPerSec: Double, eta: Double) {
        guard enabled else { return }
        let text = String(format: "epoch %d/%d  step %d/%d  loss %.4f  %.0f img/s  ETA %@",
                          epoch, epochs, step, steps, loss, imagesPerSec, ProgressLine.duration(eta))
        if isTerminal {
            if Date().timeIntervalSince(lastPrint) < 0.2 && step != steps { return }
            lastPrint = Date()
            let pad = max(0, lastLength - text.count)
            Console.write("\r" + text + String(repeating: " ", count: pad), fd: fd)
            lastLength = text.count
            if step % max(1, steps / 10) == 0 { log?.record(text) }
        } else {
            let every = max(1, steps / 10)
            if step % every == 0 || step == steps {
                Console.write(text + "\n", fd: fd)
                log?.record(text)
            }
        }
    }

    /// Ends the in-place line so the next print starts on a fresh line.
    public func finishLine() {
        guard enabled, isTerminal, lastLength > 0 else { return }
        Console.write("\n", fd: fd)
        lastLength = 0
    }

    public static func duration(_ s: Double) -> String {
        guard s.isFinite, s >= 0 else { return "--:--" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60)
                         : String(format: "%02d:%02d", t / 60, t % 60)
    }
}

/// Writes a line to stdout unbuffered, so it interleaves correctly with the progress line; the run log
/// records it (`Console`).
public func writeLine(_ s: String) { Console.line(s) }
