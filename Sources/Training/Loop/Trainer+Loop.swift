import Checkpoint
import DataPipeline
import Distributed
import Foundation
import Kernels

/// What one run keeps between its phases: where it writes, where it stands, what it reports.
final class RunContext {
    let isRoot: Bool
    let runLog: RunLog
    let log: (String) -> Void
    var metrics: MetricsLog?
    var csv: MetricsCSV?
    var resumedSums = EpochSums()
    var tracer: StepTracer?
    var board: TrainingBoard?
    /// What looks at each finished step (the tracer and the board, when there are), and whether one needs
    /// the batch before mixing.
    var observers: [StepObserver] = []
    var keepUnmixed = false
    var iterations: IterationLog?
    let progress: ProgressLine
    let totalSteps: Int
    let started = Date()
    /// Seconds per training step and per epoch-end evaluation (all its passes) as last measured, for the ETA.
    var secondsPerStep = 0.0
    var evaluationSeconds: Double?

    init(isRoot: Bool, runLog: RunLog, log: @escaping (String) -> Void, progress: ProgressLine, totalSteps: Int) {
        (self.isRoot, self.runLog, self.log, self.progress, self.totalSteps) = (isRoot, runLog, log, progress, totalSteps)
    }

    /// Appends an epoch's row to metrics.jsonl and metrics.csv and prints its line (rank 0).
    func report(_ record: MetricsRecord, _ line: String) throws {
        try metrics?.append(record)
        try csv?.append(record)
        try board?.epoch(record)
        if isRoot { log(line) }
    }
}

/// The training loop as named phases: start the run directory, restore, agree on an early preemption,
/// finish an epoch whose evaluation was cut short, then per epoch train and end it (reduce, save, evaluate,
/// report), and finish the run. One step is `trainStep`: the step, its fate, the rank-wide agreement, saves.
extension Trainer {
    /// Runs every epoch (or until `--max-steps`), evaluating after each; rank 0 appends to RUN_DIR/metrics.jsonl.
    /// Resumes from a checkpoint when asked, saves at epoch ends and every `saveEvery` steps, and on
    /// SIGTERM/SIGUSR1 saves and throws `PreemptedError`.
    public func run(log printLine: ((String) -> Void)? = nil) throws {
        let run = try startRun(log: printLine)
        try restoreRun(run)
        if try anyRank(Preemption.requested, "agree on an early preemption") {
            throw PreemptedError(checkpoint: nil, step: position.step)
        }
        run.tracer = try startTrace()
        run.observers = [run.tracer as StepObserver?, run.board].compactMap { $0 }
        run.keepUnmixed = run.observers.contains { $0.needsUnmixed }
        // A run preempted while it evaluated saved the finished epoch without its evaluation: do it first.
        if position.batch == 0 && position.epoch > 0 && position.valTop1.count < position.epoch {
            try endEpoch(position.epoch - 1, sums: run.resumedSums, finished: true, run: run)
        }
        for epoch in position.epoch..<config.epochs where position.step < run.totalSteps {
            let sums = try trainEpoch(epoch, run)
            try endEpoch(epoch, sums: sums, finished: position.batch == trainLoader.batchesPerEpoch, run: run)
        }
        try finishRun(run)
    }

    /// The run directory (config.yaml, train.log) and the progress line; rank 0 alone writes.
    func startRun(log printLine: ((String) -> Void)?) throws -> RunContext {
        let isRoot = comm.rank == 0
        if isRoot {
            do {
                try FileManager.default.createDirectory(atPath: config.out, withIntermediateDirectories: true)
                try config.resolvedYAML.write(toFile: file("config.yaml"), atomically: true, encoding: .utf8)
            } catch { throw TrainingError("cannot write to run directory \(config.out): \(error.localizedDescription)") }
        }
        let runLog = RunLog(path: isRoot ? file("train.log") : nil)
        return RunContext(isRoot: isRoot, runLog: runLog, log: printLine ?? { runLog.line($0) },
                          progress: ProgressLine(enabled: isRoot && !config.quiet, log: isRoot ? runLog : nil),
                          totalSteps: min(trainLoader.batchesPerEpoch * config.epochs, config.maxSteps ?? Int.max))
    }

    /// The checkpoint's state (`--resume`), and the metrics files opened for appending: rows of epochs after
    /// the checkpoint were written by the run that stopped, and go, so the files read as one run.
    func restoreRun(_ run: RunContext) throws {
        if let (p, sums) = try restore() { (position, run.resumedSums) = (p, sums) }
        run.iterations = try IterationLog.open(config, at: position, path: run.isRoot ? file("iterations.jsonl") : nil)
        guard run.isRoot else { return }
        if config.resume != nil {
            try MetricsLog.dropEpochs(after: position.epoch, path: file("metrics.jsonl"))
            try MetricsCSV.dropEpochs(after: position.epoch, path: file("metrics.csv"))
        }
        run.metrics = try MetricsLog(path: file("metrics.jsonl"))
        run.csv = try MetricsCSV(path: file("metrics.csv"))
        if config.tensorboard {
            run.board = try TrainingBoard(directory: config.out,
                                          picture: config.mix == .none ? nil : .init(data: data.train, method: config.mix.rawValue))
        }
        run.runLog.record("rmtrain train, \(comm.size) rank(s), configuration in \(file("config.yaml"))")
        for note in resumeNotes { warn(note) }
        for note in startNotes { run.log("rmtrain: " + note) }
    }

    /// One epoch's steps, from where the run stands to the epoch's end or `--max-steps` (no batch beyond
    /// it is loaded). Returns this rank's sums of the epoch.
    func trainEpoch(_ epoch: Int, _ run: RunContext) throws -> EpochSums {
        let epochStart = Date()
        let perEpoch = trainLoader.batchesPerEpoch
        let firstBatch = position.batch
        var sums = EpochSums()
        if firstBatch > 0 { sums = run.resumedSums } else { engine.startEpoch() }
        let batches = trainLoader.batches(epoch: epoch, from: firstBatch, until: run.totalSteps - epoch * perEpoch)
        defer { batches.close() }
        let waitBefore = sums.dataWaitSeconds
        while let (b, batch) = try batches.next() {
            sums.dataWaitSeconds = waitBefore + batches.waitSeconds
            try trainStep(batch, epoch: epoch, batch: b, sums: &sums, run: run, epochStart: epochStart)
            let elapsed = Date().timeIntervalSince(epochStart)
            let imagesPerSec = sums.globalSeen / max(elapsed, 1e-9)
            run.secondsPerStep = elapsed / Double(b + 1 - firstBatch)
            run.progress.update(epoch: epoch + 1, epochs: config.epochs, step: b + 1, steps: perEpoch,
                                loss: sums.globalLoss / max(sums.globalSeen, 1), imagesPerSec: imagesPerSec,
                                eta: Double(run.totalSteps - step) * run.secondsPerStep
                                    + Double(evaluationsLeft(after: epoch - 1, run)) * evaluationSeconds(run, trainImagesPerSec: imagesPerSec))
        }
        run.progress.finishLine()
        sums.dataWaitSeconds = waitBefore + batches.waitSeconds   // the last next(), which found the end
        sums.trainSeconds += Date().timeIntervalSince(epochStart)
        return sums
    }

    /// One step: its core (the engine's mixing, forward and backward with the all-reduce, then the update or
    /// a skip or a stop on non-finite gradients), then the observers, the agreement of every rank on the loss
    /// and on a preemption request, and a save when a checkpoint is due.
    func trainStep(_ batch: Batch, epoch: Int, batch b: Int, sums: inout EpochSums, run: RunContext, epochStart: Date) throws {
        let lr = schedule.lr(at: step)
        let output = try engine.step(batch, step: step, keepingUnmixed: run.keepUnmixed)
        let stats = output.stats
        if step == 0, let path = config.dumpGradients, run.isRoot {
            try writeTensors(engine.trainableParameters.map { SafeTensors.Entry(name: $0.name, shape: $0.grad.shape, values: $0.grad.array) },
                             to: path)
        }
        try apply(stats, lr: lr, epoch: epoch, run: run)
        position.step += 1
        position.batch = b + 1
        let place = StepPlace(step: step, epoch: epoch, batch: b, batchesPerEpoch: trainLoader.batchesPerEpoch, lr: lr,
                              applied: stats.gradientsFinite)
        for observer in run.observers { try observer.observe(output, of: batch, at: place) }
        sums.add(stats)
        // Global loss for the progress line and the preemption vote: one tiny all-reduce per step.
        let g = try comm.allReduceSum(StepVote(lossSum: stats.loss.isFinite ? stats.loss * Double(batch.size) : 0,
                                               images: Double(batch.size), preempt: Preemption.requested ? 1 : 0),
                                      "reduce step loss")
        sums.globalLoss += g.lossSum
        sums.globalSeen += g.images
        if let board = run.board, step % config.tensorboardEvery == 0, g.images > 0 {
            try board.step(step, loss: g.lossSum / g.images, lr: lr)
        }
        try run.iterations?.observe(epoch: epoch, batch: b, of: trainLoader.batchesPerEpoch, step: step, lr: lr, sums: sums,
                                    metrics: engine.metrics, comm: comm)
        if config.checkEvery > 0 && step % config.checkEvery == 0 {
            try Consensus.checkParametersAgree(engine.trainableParameters, step: step, comm: comm)
        }
        var saved = sums
        saved.trainSeconds += Date().timeIntervalSince(epochStart)
        if g.preempt > 0 {
            run.progress.finishLine()
            throw PreemptedError(checkpoint: try saveCheckpoint(position, sums: saved))
        }
        if config.saveEvery > 0 && step % config.saveEvery == 0 { try saveCheckpoint(position, sums: saved) }
    }

    /// The optimizer step when the averaged gradients are finite; otherwise skipped (`--skip-nonfinite`) or
    /// the run stops. Every rank holds the same averaged gradients, so every rank decides alike.
    private func apply(_ stats: StepStats, lr: Double, epoch: Int, run: RunContext) throws {
        guard stats.loss.isFinite || config.skipNonfinite else {
            comm.abort("loss is \(stats.loss) at epoch \(epoch + 1), step \(step + 1) on rank \(comm.rank): "
                       + "lower --lr, check the data, or pass --skip-nonfinite", code: 5)
        }
        guard stats.gradientsFinite || config.skipNonfinite else {
            throw TrainingError("gradients are not finite at epoch \(epoch + 1), step \(step + 1) (loss on rank "
                                + "\(comm.rank): \(stats.loss)); nothing was saved from this step: lower --lr, "
                                + "or pass --skip-nonfinite")
        }
        if stats.gradientsFinite {
            optimizer.step(lr: Float(lr))
            ema?.update(step: step + 1)
        } else if run.isRoot {
            warn("step \(step + 1): gradients are not finite; step skipped (--skip-nonfinite)")
        }
    }

    /// The end of a run: BN statistics averaged, the trace closed, final weights written, a summary line.
    func finishRun(_ run: RunContext) throws {
        try Consensus.averageBuffers(model.buffers, comm: comm)
        if let ema { try Consensus.averageBuffers(ema.model.buffers, comm: comm) }
        if let tracer = run.tracer {
            try tracer.writeWeights("weights-final.safetensors")
            try tracer.finish()
        }
        if config.saveAllRanks { try saveWeights(name: "final.rank\(comm.rank).safetensors") }
        guard run.isRoot else { return }
        try saveWeights()
        if let ema { try saveWeights(name: "final_ema.safetensors", of: ema.model) }
        let top1 = position.valTop1
        let best = top1.enumerated().max { $0.element <= $1.element }
        let perEpoch = trainLoader.batchesPerEpoch
        let stopped = step % perEpoch == 0 ? "" : " (--max-steps stopped it in epoch \(step / perEpoch + 1) at step \(step); "
            + "\((store.path(step: step) as NSString).lastPathComponent) continues it with --resume auto and more --max-steps)"
        let bestNote = best.map { String(format: " (best %.2f%% at epoch %d, in %@)", 100 * $0.element, $0.offset + 1, store.bestPath) } ?? ""
        run.log(String(format: "done in %@%@; final val top-1 %.2f%%%@; metrics: %@",
                       ProgressLine.duration(Date().timeIntervalSince(run.started)), stopped, 100 * (top1.last ?? 0),
                       bestNote, run.metrics?.path ?? ""))
    }
}

/// What every step reduces across ranks: the loss and images for the progress line and TensorBoard, and the
/// preemption vote (any rank's signal stops all ranks at the same step).
struct StepVote: NamedSums {
    var lossSum = 0.0, images = 0.0, preempt = 0.0
    static var fields: [NamedSumsField<Self>] { [("loss_sum", \.lossSum), ("images", \.images), ("preempt", \.preempt)] }
}
