import Kernels

/// One batch: NHWC images and integer labels, plus the data-set indices they came from.
public final class Batch: @unchecked Sendable {
    public let images: Tensor
    public private(set) var labels: [Int]
    public private(set) var indices: [Int]
    init(capacity: Int, shape: (height: Int, width: Int, channels: Int)) {
        images = Tensor(shape: [capacity, shape.height, shape.width, shape.channels])
        labels = []
        indices = []
    }
    public var size: Int { labels.count }

    func fill(_ dataset: Dataset, indices idx: ArraySlice<Int>, augment: Bool, seed: UInt64, epoch: Int) throws {
        let s = dataset.sampleShape
        let per = s.height * s.width * s.channels
        images.reshape([idx.count, s.height, s.width, s.channels])
        indices = Array(idx)
        labels = indices.map { dataset.label($0) }
        let out = images.data
        let list = indices
        var failure: Error?
        // Each sample's random numbers depend only on (seed, epoch, index): thread-count independent.
        Parallel.forEach(list.count) { k in
            var rng = RandomStream(seed: seed, stream: 0xA06, UInt64(epoch), UInt64(list[k]))
            do { try dataset.load(list[k], augment: augment, rng: &rng, into: out + k * per) }
            catch { failure = error }
        }
        if let failure { throw failure }
    }
}

/// Cuts a rank's epoch order into batches and loads them. The last batch may be smaller, as with a
/// PyTorch DataLoader without drop_last.
public final class BatchLoader {
    public let dataset: Dataset
    public let sampler: DistributedSampler
    public let batchSize: Int
    public let augment: Bool
    public let seed: UInt64
    private let batch: Batch

    public init(dataset: Dataset, sampler: DistributedSampler, batchSize: Int, augment: Bool, seed: UInt64) {
        self.dataset = dataset
        self.sampler = sampler
        self.batchSize = batchSize
        self.augment = augment
        self.seed = seed
        batch = Batch(capacity: batchSize, shape: dataset.sampleShape)
    }

    public var batchesPerEpoch: Int { (sampler.samplesPerRank + batchSize - 1) / batchSize }

    /// Visits the batches of `epoch` in order, starting at batch `from`. The `Batch` passed to `body` is
    /// reused: copy what must outlive the call.
    public func forEachBatch(epoch: Int, from: Int = 0, _ body: (Int, Batch) throws -> Void) throws {
        let order = sampler.indices(epoch: epoch)
        var b = from
        while b * batchSize < order.count {
            let slice = order[(b * batchSize)..<min(order.count, (b + 1) * batchSize)]
            try batch.fill(dataset, indices: slice, augment: augment, seed: seed, epoch: epoch)
            try body(b, batch)
            b += 1
        }
    }
}
