import Foundation

/// A training log of the RecursiveMix authors' code (implus/RecursiveMix-pytorch, main.py), read as data for
/// `rmtrain plot`. Each line is Python logging's `%(asctime)s - %(levelname)s - %(message)s` (utils.py:128; the
/// prefix may be missing, as in a copy of the console), and the messages are:
///
///     Epoch [e/E][i/N]\tlr X\tLoss v (avg)\tAcc@1 v (avg)\tAcc@5 v (avg)      (main.py:238-251, read)
///     Epoch(val) [e]\tTest Acc@1: X\tTest Acc@5: Y[\tBest Acc@1: …]\tCopypaste: …  (main.py:165, 183-185, read)
///     Epoch(val) [e/E][i/N]\tAcc@1 …                                           (main.py:272-281, skipped)
///     Exp path: …                                                             (main.py:167, 186, skipped)
///     --name value                                                           (main.py:97-98, skipped)
///     => loading checkpoint … / => loaded checkpoint … / => no checkpoint found … (main.py:141-158, skipped)
///
/// Any other line is refused, naming its number: a log of another program must not plot as an empty curve.
/// Accuracies are fractions and running means are since the epoch's start, as in our iterations.jsonl.
public struct AuthorsLog: Equatable {
    /// One `Epoch [e/E][i/N]` line: epoch 1-based, iteration 0-based of `iterations` per epoch, the lr, and
    /// the running means (the values in parentheses).
    public struct Iteration: Equatable {
        public var epoch, epochs, iteration, iterations: Int
        public var lr, loss, top1, top5: Double
        /// The iteration counted from the run's start (0-based): the plot's x.
        public var global: Int { (epoch - 1) * iterations + iteration }
    }
    /// One `Epoch(val) [e]` line: the test top-1 and top-5 after epoch `epoch` (1-based).
    public struct Evaluation: Equatable {
        public var epoch: Int
        public var top1, top5: Double
    }

    public var iterations: [Iteration] = []
    public var evaluations: [Evaluation] = []

    /// Parses `text`, the contents of `name` (for the error line). Throws `TrainingError` on the first line it
    /// cannot read ("NAME line K: …"), and when no line is a training line.
    public init(_ text: String, name: String) throws {
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.allSatisfy(\.isWhitespace) { continue }
            let message = line.firstMatch(of: Self.prefix).map { line[$0.range.upperBound...] } ?? line
            if let m = message.wholeMatch(of: Self.iteration) {
                let numbers = [m.5, m.6, m.7, m.8].compactMap { Double($0) }
                if let e = Int(m.1), let ee = Int(m.2), let i = Int(m.3), let nn = Int(m.4), numbers.count == 4 {
                    iterations.append(Iteration(epoch: e, epochs: ee, iteration: i, iterations: nn, lr: numbers[0],
                                                loss: numbers[1], top1: numbers[2], top5: numbers[3]))
                    continue
                }
            } else if let m = message.prefixMatch(of: Self.evaluation) {
                if let e = Int(m.1), let t1 = Double(m.2), let t5 = Double(m.3) {
                    evaluations.append(Evaluation(epoch: e, top1: t1, top5: t5))
                    continue
                }
            } else if Self.skipped.contains(where: { message.prefixMatch(of: $0) != nil }) {
                continue
            }
            let shown = line.count > 80 ? line.prefix(80) + "…" : line
            throw TrainingError("\(name) line \(n + 1): not a line of the RecursiveMix code's log "
                                + "(main.py's Epoch [e/E][i/N] and Epoch(val) [e] lines): '\(shown)'")
        }
        if iterations.isEmpty {
            throw TrainingError("\(name): no training line (Epoch [e/E][i/N] … Loss … Acc@1 …) of the RecursiveMix code's log")
        }
    }

    /// `2021-12-09 13:12:03,858 - INFO - ` (utils.py:128).
    nonisolated(unsafe) static let prefix = #/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - [A-Z]+ - /#
    /// main.py:238-251, the values in parentheses captured (a NaN prints as "nan", which Double reads).
    nonisolated(unsafe) static let iteration =
        #/Epoch \[(\d+)/(\d+)\]\[(\d+)/(\d+)\]\s+lr (\S+)\s+Loss \S+ \((\S+)\)\s+Acc@1 \S+ \((\S+)\)\s+Acc@5 \S+ \((\S+)\)\s*/#
    nonisolated(unsafe) static let evaluation = #/Epoch\(val\) \[(\d+)\]\s+Test Acc@1: (\S+)\s+Test Acc@5: (\S+)(?:\s|$)/#
    nonisolated(unsafe) static let skipped: [Regex<Substring>] = [
        #/Epoch\(val\) \[\d+/\d+\]\[\d+/\d+\]\s/#, #/Exp path: /#, #/--\w+(?: |$)/#,
        #/=> (?:loading|loaded) checkpoint /#, #/=> no checkpoint found /#,
    ]
}
