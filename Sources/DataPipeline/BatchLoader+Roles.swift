/// The two loaders every run builds, so that each role's sampler, augmentation and last-batch rule are
/// written once (training in `Trainer`, evaluation in `Trainer` and `rmtrain eval`).
public extension BatchLoader {
    /// How a loader reads its images: background threads (`--loader-threads`) and what an image that cannot
    /// be decoded does (`--bad-image`), counted in `badImages` (shared by a run's loaders).
    struct Reading {
        public var threads: Int
        public var badImages: BadImageLog
        public var policy: BadImagePolicy

        public init(threads: Int = 0, badImages: BadImageLog = BadImageLog(), policy: BadImagePolicy = .skip) {
            (self.threads, self.badImages, self.policy) = (threads, badImages, policy)
        }
        /// The data flags' reading settings, counting into `badImages`.
        public init(_ options: DataOptions, badImages: BadImageLog) {
            self.init(threads: options.loaderThreads, badImages: badImages, policy: options.badImage)
        }
    }

    /// Training: rank `rank` of `worldSize` takes its shard of a fresh permutation each epoch (PyTorch's
    /// `DistributedSampler(shuffle=True)`, padded by repetition unless `dropLast`), augmented; the epoch's
    /// partial last batch is dropped under `dropLast` (PyTorch's `drop_last`) and otherwise kept unless it
    /// holds a single image (`LastBatch.dropSingle`).
    static func training(_ dataset: Dataset, batchSize: Int, seed: UInt64, dropLast: Bool, worldSize: Int = 1,
                         rank: Int = 0, reading: Reading = Reading()) -> BatchLoader {
        BatchLoader(dataset: dataset,
                    sampler: DistributedSampler(count: dataset.count, worldSize: worldSize, rank: rank, shuffle: true,
                                                seed: seed, dropLast: dropLast),
                    batchSize: batchSize, augment: true, seed: seed, threads: reading.threads, badImages: reading.badImages,
                    badImagePolicy: reading.policy, lastBatch: dropLast ? .drop : .dropSingle)
    }

    /// Evaluation: rank `rank` of `worldSize` takes its slice of the data set in order, unpadded (every image
    /// counted once over the ranks), unaugmented, with the last batch kept.
    static func evaluation(_ dataset: Dataset, batchSize: Int, worldSize: Int = 1, rank: Int = 0,
                           reading: Reading = Reading()) -> BatchLoader {
        BatchLoader(dataset: dataset, sampler: .evaluation(count: dataset.count, worldSize: worldSize, rank: rank),
                    batchSize: batchSize, augment: false, seed: 0, threads: reading.threads, badImages: reading.badImages,
                    badImagePolicy: reading.policy)
    }
}
