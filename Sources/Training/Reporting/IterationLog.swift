import Distributed
import Foundation

/// RUN_DIR/iterations.jsonl (`--log-interval N`): after steps 0, N, 2N, … of each epoch (0-based, counted
/// within the epoch), one row of the epoch's running means so far, as the RecursiveMix code logs every
/// `--print_freq` iterations (main.py:237-251), so that `rmtrain plot` draws our run and their log point for point:
///
///     {"epoch": 1, "iteration": 100, "iterations": 782, "step": 101, "lr": 0.041666666666666664,
///      "train_loss": 2.19, "train_top1": 0.2076, "train_top5": 0.7124, "images": 6464}
///
/// `epoch` is 1-based and `iteration` 0-based as theirs (`Epoch [e/E][i/N]`); `step` is the global step after
/// this one; `train_loss` (the step's loss: cross-entropy on the mixed targets plus the mixing method's weighted
/// term), `train_top1` and `train_top5` (the main head against each image's own label) are means over every
/// image of the epoch so far on every rank, as theirs are AverageMeters of values averaged over the GPUs
/// (main.py:231-235, utils.py:76-86: the same means when the ranks' batches are equal). Accuracies are
/// fractions, as theirs. The sums cross the ranks in one tiny all-reduce at each logged step only; rank 0
/// writes. Every rank must call `observe` after every step (the ranks agree on which steps reduce).
final class IterationLog {
    let interval: Int
    private let file: MetricsLog?

    /// `path` on rank 0 (nil elsewhere). A resumed run continuing before epoch `resumed.epoch` (0-based),
    /// batch `resumed.batch`, drops the rows written at or after that position by the run that stopped.
    init(interval: Int, path: String?, resumedAt resumed: (epoch: Int, batch: Int)?) throws {
        self.interval = interval
        if let path, let resumed {
            try rewrite(path) { lines in
                lines.filter { line in
                    guard let row = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                          let e = row["epoch"] as? Int, let i = row["iteration"] as? Int else { return true }
                    return (e - 1, i) < (resumed.epoch, resumed.batch)
                }
            }
        }
        file = try path.map { try MetricsLog(path: $0) }
    }

    /// The log `config` asks for (nil when `--log-interval` is 0), continuing at `position` when resuming;
    /// `path` on rank 0 only.
    static func open(_ config: TrainConfig, at position: Position, path: String?) throws -> IterationLog? {
        guard config.iterationLogInterval > 0 else { return nil }
        return try IterationLog(interval: config.iterationLogInterval, path: path,
                                resumedAt: config.resume == nil ? nil : (position.epoch, position.batch))
    }

    /// After batch `b` of `epoch` (both 0-based), `step` global steps done, at `lr`: on logged steps, reduces
    /// this rank's running `sums` and metric counters over the ranks and appends the row (rank 0).
    func observe(epoch: Int, batch b: Int, of batches: Int, step: Int, lr: Double, sums: EpochSums,
                 metrics: EpochMetrics, comm: Communicator) throws {
        guard interval > 0, b % interval == 0 else { return }
        let (all, counters) = try comm.allReduceSum(sums, extra: metrics.sums, "reduce the running means of --log-interval")
        guard let file else { return }
        var r = MetricsRecord()
        r.set("epoch", epoch + 1)
        r.set("iteration", b)
        r.set("iterations", batches)
        r.set("step", step)
        r.set("lr", lr)
        let n = max(all.seen, 1)
        r.set("train_loss", all.lossSum / n)
        r.set("train_top1", all.hits / n)
        for (key, value) in metrics.report(counters) { r.set(key, value) }
        r.set("images", Int(all.seen))
        try file.append(r)
    }
}
