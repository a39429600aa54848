import Kernels

/// torch.utils.data.DistributedSampler's semantics: a permutation of the data set seeded by
/// (seed, epoch), padded by wrapping (or cut, with `dropLast`) to a multiple of the world size, and
/// rank r takes indices r, r + world, r + 2·world, … — disjoint slices that together cover the epoch.
public struct DistributedSampler: Sendable {
    public let count: Int, worldSize: Int, rank: Int
    public let shuffle: Bool, seed: UInt64, dropLast: Bool

    public init(count: Int, worldSize: Int = 1, rank: Int = 0, shuffle: Bool, seed: UInt64, dropLast: Bool = false) {
        precondition(worldSize >= 1 && rank >= 0 && rank < worldSize)
        self.count = count; self.worldSize = worldSize; self.rank = rank
        self.shuffle = shuffle; self.seed = seed; self.dropLast = dropLast
    }

    /// Samples this rank sees per epoch.
    public var samplesPerRank: Int {
        dropLast ? count / worldSize : (count + worldSize - 1) / worldSize
    }

    public func indices(epoch: Int) -> [Int] {
        var order: [Int]
        if shuffle {
            var rng = RandomStream(seed: seed, stream: 0x5A4D, UInt64(epoch))
            order = rng.permutation(count)
        } else {
            order = Array(0..<count)
        }
        let total = samplesPerRank * worldSize
        if total > order.count {
            var i = 0
            while order.count < total { order.append(order[i % count]); i += 1 }
        } else {
            order.removeLast(order.count - total)
        }
        return stride(from: rank, to: total, by: worldSize).map { order[$0] }
    }
}
