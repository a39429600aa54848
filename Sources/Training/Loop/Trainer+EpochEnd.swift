import Distributed
import Foundation
import Kernels
import Mixing

/// The end of an epoch, as its own phase: reduce the epoch's sums, average BN statistics, save the epoch's
/// checkpoint, evaluate, report one metrics row. A preemption request is acted on within one evaluation
/// batch and right after the save, never a step later.
extension Trainer {
    /// `finished`: the epoch's every batch trained (else `--max-steps` stopped it); the run's position then
    /// moves to the next epoch's start. Throws `PreemptedError` when a preemption signal arrived during the
    /// save or the evaluation; a checkpoint saved before an evaluation that was cut short keeps the epoch's
    /// sums, and the resumed run evaluates first.
    func endEpoch(_ epoch: Int, sums: EpochSums, finished: Bool, run: RunContext) throws {
        // Where a resumed run continues: the next epoch's start, or this epoch's next batch.
        let next = finished ? Position(epoch: epoch + 1, batch: 0, step: position.step, valTop1: position.valTop1) : position
        // Stopped mid-epoch (--max-steps): the checkpoint to resume or evaluate, written before BN statistics are
        // averaged (it keeps each rank's own, as a --save-every checkpoint does; one at this very step is reused).
        let savedAtStep = config.saveEvery > 0 && step % config.saveEvery == 0
        let stoppedAt = finished ? nil : (savedAtStep ? store.path(step: step) : try saveCheckpoint(next, sums: sums))
        let reduced = try sums.reduced(comm, badImages: data.badImages.count)
        // The mixing statistics and the metrics' counters in one all-reduce.
        let (mix, metrics) = try comm.allReduceSum(engine.mixing.statistics, extra: engine.metrics.sums,
                                                   "reduce mixing statistics and metrics")
        try Consensus.averageBuffers(model.buffers, comm: comm)
        if let ema { try Consensus.averageBuffers(ema.model.buffers, comm: comm) }

        let started = Date()
        let passes = ema == nil ? 1 : 2
        let local = try Evaluator.evaluate(model, loader: valLoader, shouldStop: { Preemption.requested },
                                           progress: evaluationProgress(run, epoch: epoch, pass: 0, of: passes))
        let localEMA = try ema.map { try Evaluator.evaluate($0.model, loader: valLoader, shouldStop: { Preemption.requested },
                                                            progress: evaluationProgress(run, epoch: epoch, pass: 1, of: passes)) }
        run.progress.clear()
        run.evaluationSeconds = Date().timeIntervalSince(started)
        let stopped = try anyRank(local == nil || localEMA == .some(nil), "agree on a preemption during evaluation")
        guard !stopped, var eval = local else {
            // The epoch trained, its evaluation did not finish: save with the sums that its row needs (stopped
            // mid-epoch, the checkpoint is written already, with each rank's own BN statistics).
            let path = try stoppedAt ?? saveCheckpoint(next, sums: sums)
            throw PreemptedError(checkpoint: path)
        }
        try eval.reduce(comm)
        var evalEMA = localEMA.flatMap { $0 }
        try evalEMA?.reduce(comm)
        position.valTop1.append(eval.top1Accuracy)
        let seconds = sums.trainSeconds + Date().timeIntervalSince(started)
        let row = epochRecord(epoch, reduced: reduced, mix: mix, metrics: metrics, eval: eval, evalEMA: evalEMA,
                              best: position.valTop1.max() ?? 0, seconds: seconds, trainSeconds: sums.trainSeconds)
        let line = String(format: "epoch %d/%d  train_loss %.4f  val_top1 %.2f%%  val_top5 %.2f%%  %.0f img/s  %.1fs",
                          epoch + 1, config.epochs, reduced.meanLoss, 100 * eval.top1Accuracy, 100 * eval.top5Accuracy,
                          reduced.images / max(sums.trainSeconds, 1e-9), seconds)
        // The checkpoint before the report: a report that cannot be written must not cost the epoch.
        var path = ""
        if finished {
            (position.epoch, position.batch) = (next.epoch, next.batch)
            path = try saveCheckpoint(position, sums: EpochSums())
        } else if let stoppedAt, comm.rank == 0, position.valTop1.last == position.valTop1.max() {
            // The summary names this evaluation as the best when it is: best.rmck must hold what it evaluated.
            try store.copyAsBest(stoppedAt)
        }
        try run.report(row, line)
        if finished, try anyRank(Preemption.requested, "agree on a preemption during the epoch's save") {
            throw PreemptedError(checkpoint: path)
        }
    }

    /// The progress line during pass `pass` (0: the weights, 1: their average) of `epoch`'s evaluation; its ETA
    /// is the rest of this evaluation, the steps left and the evaluations after this one.
    func evaluationProgress(_ run: RunContext, epoch: Int, pass: Int, of passes: Int) -> (Int, Int) -> Void {
        let started = Date()
        let prefix = String(format: "epoch %d/%d  ", epoch + 1, config.epochs)
        return { [self] b, n in
            let t = Date().timeIntervalSince(started)
            let onePass = t / Double(b) * Double(n)
            let eta = onePass * Double(passes - pass) - t + Double(run.totalSteps - step) * run.secondsPerStep
                + Double(evaluationsLeft(after: epoch, run)) * onePass * Double(passes)
            let images = Double(min(b * config.evaluationBatchSize * comm.size, data.val.count))
            run.progress.evaluation(prefix, batch: b, batches: n, imagesPerSec: images / max(t, 1e-9), eta: eta)
        }
    }

    /// Epoch-end evaluations still to come after `epoch` (0-based; -1 counts the current one too): one per epoch
    /// end up to the last step, which may fall within an epoch (`--max-steps`).
    func evaluationsLeft(after epoch: Int, _ run: RunContext) -> Int {
        let perEpoch = max(trainLoader.batchesPerEpoch, 1)
        return max(0, (run.totalSteps + perEpoch - 1) / perEpoch - epoch - 1)
    }

    /// An epoch-end evaluation's seconds: as last measured, else estimated from the training throughput, as
    /// the forward pass is about a third of a training step (the backward pass costs about twice the forward).
    func evaluationSeconds(_ run: RunContext, trainImagesPerSec: Double) -> Double {
        run.evaluationSeconds ?? Double(data.val.count * (ema == nil ? 1 : 2)) / max(3 * trainImagesPerSec, 1e-9)
    }

    /// One metrics.jsonl / metrics.csv row.
    func epochRecord(_ epoch: Int, reduced: EpochSums.Reduced, mix: MixStatistics, metrics: [Double], eval: EvalCounts,
                     evalEMA: EvalCounts? = nil, best: Double,
                     seconds: Double, trainSeconds: Double) -> MetricsRecord {
        var r = MetricsRecord()
        r.set("epoch", epoch + 1)
        r.set("step", step)
        r.set("train_loss", reduced.meanLoss)
        r.set("train_top1", reduced.top1)
        r.set("val_loss", eval.meanLoss)
        r.set("val_top1", eval.top1Accuracy)
        r.set("val_top5", eval.top5Accuracy)
        r.set("val_images", eval.images)
        r.set("best_val_top1", best)
        r.set("lr", schedule.lr(at: max(step - 1, 0)))
        r.set("images_per_sec", reduced.images / max(trainSeconds, 1e-9))
        r.set("seconds", seconds)
        r.set("world_size", comm.size)
        r.set("bad_images", reduced.badImages)
        r.set("global_batch", globalBatch)
        r.set("allreduce_wait_seconds", reduced.waitSeconds)
        // Mean over ranks of the time the loop waited for its loader, and its share of the epoch's training time.
        r.set("data_wait_seconds", reduced.dataWaitSeconds)
        r.set("data_wait_fraction", reduced.dataWaitSeconds / max(trainSeconds, 1e-9))
        if engine.mixing.name != "none" { r.set("mix", engine.mixing.name) }
        for (key, value) in engine.mixing.report(mix, worldSize: comm.size) { r.set(key, value) }
        for (key, value) in engine.metrics.report(metrics) { r.set(key, value) }
        if let evalEMA {
            r.set("val_loss_ema", evalEMA.meanLoss)
            r.set("val_top1_ema", evalEMA.top1Accuracy)
            r.set("val_top5_ema", evalEMA.top5Accuracy)
        }
        return r
    }
}
