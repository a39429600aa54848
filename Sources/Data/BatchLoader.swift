import Foundation
import Kernels

/// One batch: NHWC images and integer labels, plus the data-set indices they came from.
/// Batches are allocated once per loader and refilled (no per-step allocation).
public final class Batch: @unchecked Sendable {
    public let images: Tensor
    public private(set) var labels: [Int]
    public private(set) var indices: [Int]
    private let capacity: Int
    // Per-sample outcome of the last fill: the index actually loaded (after replacement), -1 if dropped.
    private let loaded: UnsafeMutablePointer<Int>
    private let errors: UnsafeMutablePointer<Error?>

    init(capacity: Int, shape: (height: Int, width: Int, channels: Int)) {
        self.capacity = capacity
        images = Tensor(shape: [capacity, shape.height, shape.width, shape.channels])
        labels = []; labels.reserveCapacity(capacity)
        indices = []; indices.reserveCapacity(capacity)
        loaded = .allocate(capacity: capacity)
        errors = .allocate(capacity: capacity)
        errors.initialize(repeating: nil, count: capacity)
    }
    /// A batch holding a copy of `images` [B, H, W, C] with `labels` (B of them): for replaying recorded
    /// batches (tests, traces). Its indices are 0..<B.
    public convenience init(images: Tensor, labels: [Int]) {
        precondition(images.shape.count == 4 && images.shape[0] == labels.count, "\(labels.count) labels for images \(images.shape)")
        self.init(capacity: labels.count, shape: (images.shape[1], images.shape[2], images.shape[3]))
        self.images.copy(from: images)
        self.labels = labels
        indices = Array(labels.indices)
    }

    deinit {
        loaded.deallocate()
        errors.deinitialize(count: capacity)
        errors.deallocate()
    }
    public var size: Int { labels.count }

    /// Loads `idx` into this batch. Each sample's random numbers depend only on (seed, epoch, index), so
    /// the content does not depend on which thread loads it. `parallel` spreads samples over
    /// `Parallel.threads`; prefetch workers fill their batch alone.
    func fill(_ l: BatchLoader, indices idx: ArraySlice<Int>, epoch: Int, parallel: Bool) throws {
        let dataset = l.dataset
        let s = dataset.sampleShape
        let per = s.height * s.width * s.channels
        let n = idx.count
        images.reshape([n, s.height, s.width, s.channels])
        let out = images.data, loaded = self.loaded, errors = self.errors
        let first = idx.startIndex
        let body = { (k: Int) in
            var index = idx[first + k]
            // A bad image is replaced (training) by the next index that loads, or dropped (evaluation).
            for _ in 0..<BatchLoader.maxReplacements {
                var rng = RandomStream(seed: l.seed, stream: 0xA06, UInt64(epoch), UInt64(index))
                do {
                    try dataset.load(index, augment: l.augment, rng: &rng, into: out + k * per)
                    loaded[k] = index
                    l.badImages.noteRead()
                    return
                } catch let bad as BadImage {
                    if l.badImagePolicy == .fail {
                        errors[k] = DataError("bad image \(bad) (--bad-image fail stops here; --bad-image skip skips it)")
                        return
                    }
                    l.badImages.record(bad)
                    if !l.augment { loaded[k] = -1; return }
                    index = (index + 1) % dataset.count
                } catch {
                    errors[k] = error
                    return
                }
            }
            let firstBad = l.badImages.first.map { "; the first: \($0.path): \($0.reason)" } ?? ""
            errors[k] = l.badImages.anyImageRead
                ? DataError("\(BatchLoader.maxReplacements) bad images in a row in \(dataset.name)\(firstBad)")
                : DataError("no image of \(dataset.name) could be read\(firstBad)")
        }
        if parallel { Parallel.forEach(n, body) } else { for k in 0..<n { body(k) } }
        indices.removeAll(keepingCapacity: true)
        labels.removeAll(keepingCapacity: true)
        var firstError: Error?
        var kept = 0
        for k in 0..<n {
            if let e = errors[k] { if firstError == nil { firstError = e }; errors[k] = nil; continue }
            guard loaded[k] >= 0 else { continue }
            if kept != k { (out + kept * per).update(from: out + k * per, count: per) }   // close the gap of a dropped image
            indices.append(loaded[k])
            labels.append(dataset.label(loaded[k]))
            kept += 1
        }
        if let firstError { throw firstError }
        images.reshape([kept, s.height, s.width, s.channels])
    }
}

/// Cuts a rank's epoch order into batches and loads them. The last batch may be smaller, as with a
/// PyTorch DataLoader without drop_last.
///
/// With `threads` ≥ 1, that many background threads decode and augment whole batches ahead of the
/// consumer: batch b is filled by thread b mod threads into one of `threads + 1` preallocated batches, at
/// most `threads + 1` batches ahead of the one being consumed (a bounded queue), and handed over in
/// order. With `threads` = 0 each batch is loaded when asked for, spread over `Parallel.threads`.
/// Either way a batch's content is a pure function of (seed, epoch, indices).
public final class BatchLoader: @unchecked Sendable {
    public let dataset: Dataset
    public let sampler: DistributedSampler
    public let batchSize: Int
    public let augment: Bool
    public let seed: UInt64
    public let threads: Int
    public let badImagePolicy: BadImagePolicy
    /// Bad images skipped (counted across the loaders that share it).
    public let badImages: BadImageLog
    static let maxReplacements = 64
    private var pool: [Batch] = []

    /// What happens to an epoch's last, partial batch of this rank's samples.
    public enum LastBatch: Sendable {
        /// Kept, smaller (evaluation: every image counts).
        case keep
        /// Dropped (`--drop-last`, PyTorch DataLoader's drop_last).
        case drop
        /// Kept unless it holds a single sample, which is dropped: BatchNorm would take a whole layer's
        /// batch statistics, and update its running variance, from one image (training without --drop-last).
        case dropSingle
    }
    public let lastBatch: LastBatch

    public init(dataset: Dataset, sampler: DistributedSampler, batchSize: Int, augment: Bool, seed: UInt64,
                threads: Int = 0, badImages: BadImageLog = BadImageLog(), badImagePolicy: BadImagePolicy = .skip,
                lastBatch: LastBatch = .keep) {
        self.lastBatch = lastBatch
        self.dataset = dataset
        self.sampler = sampler
        self.batchSize = batchSize
        self.augment = augment
        self.seed = seed
        self.threads = max(0, threads)
        self.badImages = badImages
        self.badImagePolicy = badImagePolicy
    }

    /// Batches of this rank per epoch (every rank has the same number: the sampler gives each the same count).
    public var batchesPerEpoch: Int {
        let n = sampler.samplesPerRank, full = n / batchSize, rest = n % batchSize
        switch lastBatch {
        case .keep: return full + (rest > 0 ? 1 : 0)
        case .drop: return full
        case .dropSingle: return full + (rest > 1 || (rest == 1 && full == 0) ? 1 : 0)
        }
    }

    /// Batches allocated on first use (an unused loader holds no image memory) and kept.
    private func batches(_ n: Int) -> [Batch] {
        while pool.count < n { pool.append(Batch(capacity: batchSize, shape: dataset.sampleShape)) }
        return Array(pool.prefix(n))
    }

    /// Visits the batches of `epoch` in order, starting at batch `from`. The `Batch` passed to `body` is
    /// reused: copy what must outlive the call. A batch whose images were all dropped (bad images during
    /// evaluation) is not visited.
    public func forEachBatch(epoch: Int, from: Int = 0, _ body: (Int, Batch) throws -> Void) throws {
        let order = sampler.indices(epoch: epoch)
        let count = batchesPerEpoch
        guard from < count else { return }
        if threads == 0 {
            let batch = batches(1)[0]
            for b in from..<count {
                try batch.fill(self, indices: slice(order, b), epoch: epoch, parallel: true)
                if batch.size > 0 { try body(b, batch) }
            }
            return
        }
        let run = Prefetch(batches: batches(threads + 1), from: from)
        for w in 0..<min(threads, count - from) {
            let t = Thread { [self] in
                var b = from + w
                while b < count, let batch = run.acquire(b) {
                    do { try batch.fill(self, indices: slice(order, b), epoch: epoch, parallel: false); run.publish(b, batch, nil) }
                    catch { run.publish(b, batch, error) }
                    b += threads
                }
                run.workerDone()
            }
            t.name = "rmtrain-loader-\(w)"
            t.start()
        }
        defer { run.stop(workers: min(threads, count - from)) }
        for b in from..<count {
            let (batch, error) = run.next(b)
            if let error { throw error }
            if batch.size > 0 { try body(b, batch) }
            run.release(batch)
        }
    }

    private func slice(_ order: [Int], _ b: Int) -> ArraySlice<Int> {
        order[(b * batchSize)..<min(order.count, (b + 1) * batchSize)]
    }
}

/// The bounded hand-over between prefetch workers and the consumer. Batch b may be filled only while
/// b < released + slots (released = batches handed back), so the slots always suffice for the batches
/// in that window and the worker of the next needed batch never waits for a slot: no deadlock.
final class Prefetch: @unchecked Sendable {
    private let cond = NSCondition()
    private var free: [Batch]
    private var ready: [(Batch, Error?)?]
    private var released: Int
    private var stopped = false
    private var finished = 0
    private let slots: Int

    init(batches: [Batch], from: Int) {
        free = batches
        slots = batches.count
        ready = Array(repeating: nil, count: batches.count)
        released = from
    }

    /// A free batch to fill as batch `b`, once `b` is inside the window; nil when stopped.
    func acquire(_ b: Int) -> Batch? {
        cond.lock(); defer { cond.unlock() }
        while !stopped && b >= released + slots { cond.wait() }
        return stopped ? nil : free.popLast()
    }

    func publish(_ b: Int, _ batch: Batch, _ error: Error?) {
        cond.lock()
        ready[b % slots] = (batch, error)
        cond.broadcast()
        cond.unlock()
    }

    /// Waits for batch `b`.
    func next(_ b: Int) -> (Batch, Error?) {
        cond.lock(); defer { cond.unlock() }
        while ready[b % slots] == nil { cond.wait() }
        let r = ready[b % slots]!
        ready[b % slots] = nil
        return r
    }

    func release(_ batch: Batch) {
        cond.lock()
        free.append(batch)
        released += 1
        cond.broadcast()
        cond.unlock()
    }

    func workerDone() {
        cond.lock(); finished += 1; cond.broadcast(); cond.unlock()
    }

    /// Stops the workers (after an error, or at the end) and waits until they have exited, so no batch is
    /// written after `forEachBatch` returns.
    func stop(workers: Int) {
        cond.lock()
        stopped = true
        cond.broadcast()
        while finished < workers { cond.wait() }
        // Batches still published but not consumed go back to the pool.
        for i in 0..<slots { if let (b, _) = ready[i] { free.append(b); ready[i] = nil } }
        cond.unlock()
    }
}
