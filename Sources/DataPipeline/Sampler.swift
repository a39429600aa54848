import Kernels

/// torch.utils.data.DistributedSampler's semantics: a permutation of the data set seeded by
/// (seed, epoch), padded by wrapping (or cut, with `dropLast`) to a multiple of the world size, and
/// rank r takes indices r, r + world, r + 2·world, … — disjoint slices that together cover the epoch.
///
/// With `pad: false` (evaluation) nothing is padded or dropped: rank r takes r, r + world, … < count, so
/// the ranks' counts differ by at most one and add up to the data set exactly — every image is counted
/// once. `DistributedSampler.evaluation` builds that.
public struct DistributedSampler: Sendable {
    public let count: Int, worldSize: Int, rank: Int
    public let shuffle: Bool, seed: UInt64, dropLast: Bool
    public let pad: Bool

    public init(count: Int, worldSize: Int = 1, rank: Int = 0, shuffle: Bool, seed: UInt64, dropLast: Bool = false,
                pad: Bool = true) {
        precondition(worldSize >= 1 && rank >= 0 && rank < worldSize)
        self.count = count; self.worldSize = worldSize; self.rank = rank
        self.shuffle = shuffle; self.seed = seed; self.dropLast = dropLast
        self.pad = pad
    }

    /// In order, unpadded: each validation image on exactly one rank.
    public static func evaluation(count: Int, worldSize: Int = 1, rank: Int = 0) -> DistributedSampler {
        DistributedSampler(count: count, worldSize: worldSize, rank: rank, shuffle: false, seed: 0, pad: false)
    }

    /// Samples this rank sees per epoch.
    public var samplesPerRank: Int {
        if dropLast { return count / worldSize }
        if !pad { return count / worldSize + (rank < count % worldSize ? 1 : 0) }
        return (count + worldSize - 1) / worldSize
    }

    public func indices(epoch: Int) -> [Int] {
        var order: [Int]
        if shuffle {
            var rng = RandomStream(seed: seed, stream: RandomStreams.shuffle, UInt64(epoch))
            order = rng.permutation(count)
        } else {
            order = Array(0..<count)
        }
        if !pad && !dropLast { return stride(from: rank, to: count, by: worldSize).map { order[$0] } }
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
