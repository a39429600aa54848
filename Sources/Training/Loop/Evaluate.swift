import Checkpoint
import DataPipeline
import Distributed
import Kernels
import Models

/// Exact counts over an evaluation set: summed as counts (not averaged per batch), so they can later
/// be added across ranks.
public struct EvalCounts: Sendable, Equatable {
    public var images = 0
    public var top1 = 0
    public var top5 = 0
    public var lossSum = 0.0

    public var top1Accuracy: Double { images > 0 ? Double(top1) / Double(images) : 0 }
    public var top5Accuracy: Double { images > 0 ? Double(top5) / Double(images) : 0 }
    public var meanLoss: Double { images > 0 ? lossSum / Double(images) : 0 }
}

public enum Evaluator {
    /// Loads a checkpoint's parameters and (rank-averaged) BN statistics into a model built for `data`.
    public static func model(from state: CheckpointState, path: String, data: Dataset) throws -> any Model {
        guard let model = Networks.make(state.header.model, inChannels: data.sampleShape.channels, numClasses: data.numClasses) else {
            throw TrainingError("\(path): unknown model \(state.header.model)")
        }
        let byName = Dictionary(uniqueKeysWithValues: state.tensors.map { ($0.name, $0) })
        try copyTensors(byName, into: model.parameters.map { ($0.name, $0.value) } + model.buffers.map { ($0.name, $0.value) },
                        source: path) { name, saved, wanted in
            "\(name) has shape \(saved) but \(data.name) needs \(wanted) (\(data.sampleShape.channels) channels, \(data.numClasses) classes)"
        }
        return model
    }

    /// Runs the model in eval mode over every batch of `loader` and counts top-1 / top-5 hits; `progress` is
    /// told (batches done, batches) after each batch.
    public static func evaluate(_ model: any Model, loader: BatchLoader, epoch: Int = 0,
                                progress: ((Int, Int) -> Void)? = nil) throws -> EvalCounts {
        try evaluate(model, loader: loader, epoch: epoch, shouldStop: { false }, progress: progress)!
    }

    /// As above, asking `shouldStop` before each batch: nil when it said yes (a preemption request).
    public static func evaluate(_ model: any Model, loader: BatchLoader, epoch: Int = 0,
                                shouldStop: () -> Bool, progress: ((Int, Int) -> Void)? = nil) throws -> EvalCounts? {
        struct Stopped: Error {}
        var counts = EvalCounts()
        let batches = loader.batchesPerEpoch
        do {
            try loader.forEachBatch(epoch: epoch) { b, batch in
                if shouldStop() { throw Stopped() }
                let logits = model.forward(batch.images, training: false)
                counts.add(logits: logits, labels: batch.labels)
                progress?(b + 1, batches)
            }
        } catch is Stopped { return nil }
        return counts
    }
}

extension EvalCounts {
    /// Sums the counts of every rank (each evaluated its own slice of the set).
    public mutating func reduce(_ comm: Communicator) throws {
        let s = try comm.allReduceSum(Sums(images: Double(images), top1: Double(top1), top5: Double(top5), lossSum: lossSum),
                                      "reduce evaluation counts")
        images = Int(s.images); top1 = Int(s.top1); top5 = Int(s.top5); lossSum = s.lossSum
    }

    /// The counts as they travel between ranks.
    struct Sums: NamedSums {
        var images = 0.0, top1 = 0.0, top5 = 0.0, lossSum = 0.0
        static var fields: [NamedSumsField<Self>] {
            [("images", \.images), ("top1", \.top1), ("top5", \.top5), ("loss_sum", \.lossSum)]
        }
    }

    /// Adds one batch: a hit in top-k means the label's rank (`labelRank`) is below k.
    public mutating func add(logits: Tensor, labels: [Int]) {
        let k = logits.count / max(labels.count, 1)
        for (i, label) in labels.enumerated() {
            let row = logits.data + i * k
            let target = row[label]
            let higher = labelRank(label: label, in: row, classes: k)
            var m = row[0]
            for c in 0..<k { m = max(m, row[c]) }
            var s = 0.0
            for c in 0..<k { s += _exp(Double(row[c] - m)) }
            lossSum += Double(m) + _log(s) - Double(target)
            images += 1
            if higher < 1 { top1 += 1 }
            if higher < 5 { top5 += 1 }
        }
    }
}

/// The label's rank among a row's `k` logits (0 = first): the classes that score higher, or the same at a lower
/// index, as `torch.argmax` and `torch.topk` order them. The label is in the top n when this is below n: one tie
/// rule for `train_top1`, `train_top5`, `val_top1` and `val_top5`. A NaN outranks every number, and a NaN
/// label score is never a hit (rank k).
func labelRank(label: Int, in row: UnsafePointer<Float>, classes k: Int) -> Int {
    let v = row[label]
    if v.isNaN { return k }
    var rank = 0
    for c in 0..<k where c != label && (row[c] > v || row[c].isNaN || (row[c] == v && c < label)) { rank += 1 }
    return rank
}

import Foundation
@inline(__always) private func _exp(_ x: Double) -> Double { Foundation.exp(x) }
@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
