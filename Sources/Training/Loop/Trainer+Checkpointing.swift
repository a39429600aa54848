import Checkpoint
import Distributed
import Foundation
import Kernels
import Layers

/// Where a run continues from: epoch and batch within it, global step, finished epochs' top-1.
struct Position {
    var epoch = 0
    var batch = 0
    var step = 0
    var valTop1: [Double] = []
}

extension Trainer {
    var store: CheckpointStore { CheckpointStore(directory: config.out) }

    /// A collective: all ranks call it at the same step; rank 0 gathers every rank's own state and writes
    /// one file atomically. Returns the path written (rank 0).
    ///
    /// The shared section holds BN statistics averaged over the ranks (what evaluation and export use);
    /// each rank's section also keeps its own, un-averaged ones, so a resumed run continues with exactly
    /// the state an unbroken run has, wherever the save fell.
    @discardableResult
    func saveCheckpoint(_ position: Position, sums: EpochSums) throws -> String {
        for p in engine.trainableParameters where !p.value.isFinite {
            throw TrainingError("parameter \(p.name) is not finite at step \(position.step); not writing a checkpoint")
        }
        var mine = engine.rankState()
        mine += sums.entries(prefix: EpochSums.checkpointPrefix)
        mine += entries(model.buffers.map { (CheckpointNames.rankBuffer + $0.name, $0.value) })
        if let ema { mine += entries(ema.model.buffers.map { (CheckpointNames.rankEMABuffer + $0.name, $0.value) }) }
        let averaged = try averagedCopy(model.buffers)
        let averagedEMA = try ema.map { try averagedCopy($0.model.buffers) } ?? []
        let gathered = try comm.gather(bytes: [UInt8](SafeTensors.encode(mine)), root: 0, "gather checkpoint state")
        guard comm.rank == 0 else { return "" }
        let ranks = try gathered.enumerated().map { r, bytes -> [SafeTensors.Entry] in
            let d = try SafeTensors.decode(Data(bytes), source: "rank \(r) state")
            return d.keys.sorted().map { d[$0]! }
        }
        var tensors = entries(engine.trainableParameters.map { ($0.name, $0.value) } + averaged.map { ($0.name, $0.value) })
        tensors += entries(zip(optimizer.parameters, optimizer.velocity).map { (CheckpointNames.momentum + $0.0.name, $0.1) })
        if let ema {
            tensors += entries((ema.model.parameters.map { ($0.name, $0.value) } + averagedEMA.map { ($0.name, $0.value) })
                .map { (CheckpointNames.ema + $0.0, $0.1) })
        }
        var header = CheckpointHeader(
            model: config.model,
            shapes: Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.value.shape) }),
            configuration: config.fingerprint + dataFingerprint,
            configurationHash: String(FNV1a.hash((config.fingerprint + dataFingerprint).joined(separator: "\n").utf8), radix: 16),
            worldSize: comm.size, epoch: position.epoch, batchInEpoch: position.batch, step: position.step,
            valTop1History: position.valTop1)
        header.input = ModelInput.spec(of: data.train)
        let bytes = try CheckpointFile.encode(CheckpointState(header: header, tensors: tensors, ranks: ranks),
                                              level: Int32(config.ckptLevel))
        let path = store.path(step: position.step)
        try CheckpointStore.writeAtomically(bytes, to: path)
        store.prune(keep: config.keep)
        if let best = position.valTop1.max(), position.batch == 0, position.valTop1.last == best {
            try CheckpointStore.writeAtomically(bytes, to: store.bestPath)
        }
        return path
    }

    /// Loads the checkpoint named by `config.resume` into this trainer (all ranks read the file).
    /// Returns the position to continue from and this rank's epoch sums.
    func restore() throws -> (Position, EpochSums)? {
        guard let resume = config.resume else { return nil }
        let state: CheckpointState
        let path: String
        if resume == "auto" {
            guard let found = try newestToResume() else { return nil }
            (path, state) = found
        } else {
            path = resume
            state = try CheckpointStore.read(resume)
        }
        let h = state.header
        guard h.model == config.model else {
            throw TrainingError("--resume \(path): checkpoint is of model \(h.model), this run is --model \(config.model)")
        }
        let byName = Dictionary(uniqueKeysWithValues: state.tensors.map { ($0.name, $0) })
        try load(byName, into: engine.trainableParameters.map { ($0.name, $0.value) } + model.buffers.map { ($0.name, $0.value) },
                 path: path)
        if config.resumeWeightsOnly {
            ema?.restart()
            if comm.rank == 0 { writeLine("rmtrain: loaded weights from \(path) (step \(h.step)); starting a new schedule") }
            return nil
        }
        // Another number of ranks (a requeued job on other nodes) resumes from an epoch's end: nothing of a rank's
        // own is needed there but its RecursiveMix history, which an epoch starts without anyway.
        let elastic = h.worldSize != comm.size
        if elastic && (h.batchInEpoch != 0 || h.valTop1History.count != h.epoch) {
            throw TrainingError("--resume \(path): checkpoint was written by \(h.worldSize) ranks in the middle of epoch "
                                + "\(h.epoch + (h.batchInEpoch != 0 ? 1 : 0)), this run has \(comm.size): another number of ranks "
                                + "resumes only from an epoch's end (resume on \(h.worldSize) ranks to finish the epoch, or use "
                                + "--resume-weights-only to load its weights alone)")
        }
        try checkSameRun(h, path: path)
        try load(byName, into: zip(optimizer.parameters, optimizer.velocity).map { (CheckpointNames.momentum + $0.0.name, $0.1) },
                 path: path)
        if elastic {
            try restoreElastic(h, byName, path: path)
            return (Position(epoch: h.epoch, batch: 0, step: h.epoch * trainLoader.batchesPerEpoch, valTop1: h.valTop1History),
                    EpochSums())
        }
        let rankEntries = Dictionary(uniqueKeysWithValues: state.ranks[comm.rank].map { ($0.name, $0) })
        try load(rankEntries, into: model.buffers.map { (CheckpointNames.rankBuffer + $0.name, $0.value) },
                 path: "\(path) rank \(comm.rank)")
        try engine.restoreRankState(rankEntries, source: "\(path) rank \(comm.rank)")
        try restoreEMA(byName, rankEntries: rankEntries, path: path)
        let sums = EpochSums(entries: rankEntries, prefix: EpochSums.checkpointPrefix, legacy: EpochSums.legacy)
        if comm.rank == 0 {
            writeLine("rmtrain: resumed from \(path): epoch \(h.epoch + 1), batch \(h.batchInEpoch), step \(h.step)")
        }
        return (Position(epoch: h.epoch, batch: h.batchInEpoch, step: h.step, valTop1: h.valTop1History), sums)
    }

    /// `--resume auto`: rank 0 picks the newest checkpoint in --out that verifies, moving aside those that do not,
    /// and every rank reads the one it names. Nothing to resume from starts at step 0 when the folder holds no
    /// earlier run (a first launch of a requeued job), and is refused when it does: restarting would replace
    /// that run's metrics and best.rmck without a word, and every later requeue would restart again.
    private func newestToResume() throws -> (String, CheckpointState)? {
        var chosen: (String, CheckpointState)?
        var name = [UInt8]()
        if comm.rank == 0 {
            chosen = store.newestValid(warn: { warn($0) }, moveAside: true)
            name = Array((chosen?.0 ?? "").utf8)
            if chosen == nil {
                let found = RunFolder.history(in: config.out)
                if !found.isEmpty {
                    let best = store.bestPath
                    let hint = FileManager.default.fileExists(atPath: best) ? "resume from \(best) with --resume \(best)" : "resume from a named checkpoint with --resume PATH"
                    throw TrainingError("--resume auto: \(config.out) holds a run (\(found.joined(separator: ", "))) but no step checkpoint "
                                        + "that verifies: \(hint), or give a fresh --out to start again")
                }
                writeLine("rmtrain: --resume auto: no checkpoint in \(config.out); starting at step 0")
            }
        }
        try comm.broadcast(bytes: &name, root: 0, "agree on the checkpoint to resume from")
        if comm.rank == 0 || name.isEmpty { return chosen }
        let path = String(decoding: name, as: UTF8.self)
        return (path, try CheckpointStore.read(path))
    }

    /// Refuses a resume whose configuration or data differ from the checkpoint's, except what may change
    /// (`TrainConfig.resumableDifferences`, more --epochs, a moved data folder with the same fingerprint, other
    /// data with --allow-data-change), each noted in `resumeNotes`.
    private func checkSameRun(_ h: CheckpointHeader, path: String) throws {
        // Checkpoints keep the configuration and the data fingerprint (older ones the configuration only).
        let current = config.fingerprint + dataFingerprint
        let ours = Set(current), theirs = Trainer.recordedConfiguration(h.configuration)
        var differs = theirs.subtracting(ours).filter { line in
            !TrainConfig.resumableDifferences.contains(String(line.split(separator: "=").first ?? ""))
        }
        // --epochs may change on resume (a requeued job given more time): the schedule is rebuilt for the new
        // length and continues from the resumed step.
        if let old = differs.first(where: { $0.hasPrefix("epochs=") }) {
            differs.remove(old)
            resumeNotes.append("--epochs changed on resume (checkpoint \(old), now \(config.epochs)): the learning-rate "
                               + "schedule is recomputed for \(config.epochs) epochs and continues from the resumed position")
        }
        // The data may move (another mount, another node's copy) when its fingerprint is the checkpoint's.
        if h.configuration.contains(where: { $0.hasPrefix("data-") }), !differs.contains(where: { $0.hasPrefix("data-") }),
           let old = differs.first(where: { $0.hasPrefix("data=") }) {
            differs.remove(old)
            resumeNotes.append("the data moved (checkpoint \(old), now data=\(config.data)); the same images by the data "
                               + "fingerprint (classes, counts, file list)")
        }
        func detail(_ lines: Set<String>) -> String {
            lines.sorted().map { line -> String in
                let key = String(line.split(separator: "=").first ?? "")
                let now = current.first { $0.hasPrefix(key + "=") } ?? "\(key)=?"
                return "checkpoint has \(line), this run \(now)"
            }.joined(separator: "; ")
        }
        let dataDiffers = differs.filter { $0.hasPrefix("data-") }, configDiffers = differs.filter { !$0.hasPrefix("data-") }
        if !configDiffers.isEmpty {
            throw TrainingError("--resume \(path): configuration differs: " + detail(configDiffers)
                                + " (use --resume-weights-only to load its weights alone)")
        }
        if !dataDiffers.isEmpty {
            guard config.allowDataChange else {
                throw TrainingError("--resume \(path): the data differs from the checkpoint's: " + detail(dataDiffers)
                                    + " (a missing or changed file? --allow-data-change resumes anyway)")
            }
            resumeNotes.append("resuming on other data than the checkpoint's (--allow-data-change): " + detail(dataDiffers))
        }
    }

    /// A checkpoint's configuration lines, with the default of each setting it does not name: such a setting is
    /// newer than the checkpoint, whose run had its default (`sched-on=updates` before --sched-on existed).
    static func recordedConfiguration(_ lines: [String]) -> Set<String> {
        func key(_ line: String) -> Substring { line.prefix { $0 != "=" } }
        let named = Set(lines.map(key))
        if named.isEmpty { return [] }
        return Set(lines).union(TrainConfig().fingerprint.filter { !named.contains(key($0)) })
    }

    /// The rest of a resume on another number of ranks, at an epoch's end: BN statistics (and the weight
    /// average's) are the ranks' averages already loaded, the sampler re-shards by itself, each rank's mixing
    /// state starts as at any epoch start, and the step is renumbered for this world's steps per epoch.
    private func restoreElastic(_ h: CheckpointHeader, _ byName: [String: SafeTensors.Entry], path: String) throws {
        try restoreEMA(byName, rankEntries: nil, path: path)
        let step = h.epoch * trainLoader.batchesPerEpoch
        var note = "resumed on \(comm.size) rank(s) from a checkpoint of \(h.worldSize) at the end of epoch \(h.epoch): the data "
            + "is re-sharded (global batch \(config.batchSize * h.worldSize) → \(globalBatch), \(trainLoader.batchesPerEpoch) "
            + "steps per epoch, step \(h.step) renumbered \(step)), BN statistics are the ranks' average"
        if config.mix == .rm {
            note += config.rmHistory == .persistent
                ? "; --rm-history persistent: the \(h.worldSize) ranks' histories cannot be split over \(comm.size), so they start empty"
                : "; RecursiveMix histories start empty, as at any epoch start"
        }
        resumeNotes.append(note)
        if comm.rank == 0 { writeLine("rmtrain: resumed from \(path): epoch \(h.epoch + 1), batch 0, step \(step)") }
    }

    /// The weight average (`--model-ema`): its parameters from the shared section, its BN statistics from this
    /// rank's section, or the shared (rank-averaged) ones when `rankEntries` is nil (another number of ranks).
    /// A checkpoint without an average restarts it from the resumed weights, and the log says so.
    private func restoreEMA(_ byName: [String: SafeTensors.Entry], rankEntries: [String: SafeTensors.Entry]?, path: String) throws {
        guard let ema else { return }
        guard byName[CheckpointNames.ema + model.classifier.weight.name] != nil else {
            ema.restart()
            resumeNotes.append("--model-ema: \(path) holds no average; it restarts from the resumed weights")
            return
        }
        try load(byName, into: ema.model.parameters.map { (CheckpointNames.ema + $0.name, $0.value) }, path: path)
        if let rankEntries {
            try load(rankEntries, into: ema.model.buffers.map { (CheckpointNames.rankEMABuffer + $0.name, $0.value) },
                     path: "\(path) rank \(comm.rank)")
        } else {
            try load(byName, into: ema.model.buffers.map { (CheckpointNames.ema + $0.name, $0.value) }, path: path)
        }
    }

    /// Copies of `buffers` averaged over the ranks (a collective; the buffers themselves stay this rank's).
    private func averagedCopy(_ buffers: [Buffer]) throws -> [Buffer] {
        let copies = buffers.map { Buffer($0.name, shape: $0.value.shape, fill: 0) }
        for (a, b) in zip(copies, buffers) { a.value.copy(from: b.value) }
        try Consensus.averageBuffers(copies, comm: comm)
        return copies
    }

    private func entries(_ named: [(String, Tensor)]) -> [SafeTensors.Entry] {
        named.map { SafeTensors.Entry(name: $0.0, shape: $0.1.shape, values: $0.1.array) }
    }

    private func load(_ byName: [String: SafeTensors.Entry], into targets: [(String, Tensor)], path: String) throws {
        try copyTensors(byName, into: targets, source: "--resume \(path)") { name, saved, wanted in
            "\(name) has shape \(saved) in the checkpoint, \(wanted) in this model"
        }
    }

    func warn(_ message: String) { Diagnostics.warning(message) }
}

/// Copies each named checkpoint tensor into its target, or throws naming `source` and the tensor that is
/// missing or of another shape (`shapeMismatch` words the latter).
func copyTensors(_ byName: [String: SafeTensors.Entry], into targets: [(String, Tensor)], source: String,
                 shapeMismatch: (String, [Int], [Int]) -> String) throws {
    for (name, t) in targets {
        guard let e = byName[name] else { throw TrainingError("\(source): no tensor \(name) in the checkpoint") }
        guard e.shape == t.shape else { throw TrainingError("\(source): " + shapeMismatch(name, e.shape, t.shape)) }
        e.values.withUnsafeBufferPointer { t.data.update(from: $0.baseAddress!, count: t.count) }
    }
}
