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
                var rng = RandomStream(seed: l.seed, stream: RandomStreams.augmentation, UInt64(epoch), UInt64(index))
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
    fileprivate func pooled(_ n: Int) -> [Batch] {
        while pool.count < n { pool.append(Batch(capacity: batchSize, shape: dataset.sampleShape)) }
        return Array(pool.prefix(n))
    }

    /// The batches of `epoch` from batch `from` up to, not including, batch `until` (the epoch's end when
    /// nil), as an iterator the caller may leave at any time: no batch past `until` is decoded, and the
    /// prefetch threads stop when the iterator is closed or released.
    public func batches(epoch: Int, from: Int = 0, until: Int? = nil) -> EpochBatches {
        EpochBatches(loader: self, epoch: epoch, from: from, until: min(until ?? batchesPerEpoch, batchesPerEpoch))
    }

    /// Visits the batches of `epoch` in order, from batch `from` to `until` (see `batches`). The `Batch`
    /// passed to `body` is reused: copy what must outlive the call. A batch whose images were all dropped
    /// (bad images during evaluation) is not visited.
    public func forEachBatch(epoch: Int, from: Int = 0, until: Int? = nil, _ body: (Int, Batch) throws -> Void) throws {
        let batches = batches(epoch: epoch, from: from, until: until)
        defer { batches.close() }
        while let (b, batch) = try batches.next() { try body(b, batch) }
    }

    fileprivate func slice(_ order: [Int], _ b: Int) -> ArraySlice<Int> {
        order[(b * batchSize)..<min(order.count, (b + 1) * batchSize)]
    }
}

/// One epoch's batches in order (`BatchLoader.batches`). `next()` returns the next batch, valid until the
/// following call; nil at the end. With prefetch threads, they fill batches ahead, never past `until`.
public final class EpochBatches {
    private let loader: BatchLoader
    private let epoch: Int
    private let order: [Int]
    private let until: Int
    private var b: Int
    private var run: Prefetch?
    private var workers = 0
    private var current: Batch?
    /// Seconds `next()` has spent waiting for batches so far: blocked on the prefetch threads, or decoding
    /// in the caller's thread when the loader has none. What the training loop reports as its data wait.
    public private(set) var waitSeconds = 0.0

    fileprivate init(loader: BatchLoader, epoch: Int, from: Int, until: Int) {
        (self.loader, self.epoch, self.b, self.until) = (loader, epoch, from, until)
        order = loader.sampler.indices(epoch: epoch)
        guard loader.threads > 0, from < until else { return }
        let run = Prefetch(batches: loader.pooled(loader.threads + 1), from: from)
        self.run = run
        workers = min(loader.threads, until - from)
        let (threads, order) = (loader.threads, order)
        for w in 0..<workers {
            let t = Thread { [loader] in
                var b = from + w
                while b < until, let batch = run.acquire(b) {
                    do { try batch.fill(loader, indices: loader.slice(order, b), epoch: epoch, parallel: false); run.publish(b, batch, nil) }
                    catch { run.publish(b, batch, error) }
                    b += threads
                }
                run.workerDone()
            }
            t.name = "rmtrain-loader-\(w)"
            t.start()
        }
    }

    deinit { close() }

    /// The next batch and its index in the epoch; nil after the last (or after an error was thrown).
    public func next() throws -> (Int, Batch)? {
        let started = DispatchTime.now().uptimeNanoseconds
        defer { waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9 }
        while b < until {
            let index = b
            b += 1
            guard let run else {
                let batch = loader.pooled(1)[0]
                try batch.fill(loader, indices: loader.slice(order, index), epoch: epoch, parallel: true)
                if batch.size > 0 { return (index, batch) }
                continue
            }
            if let current { run.release(current); self.current = nil }
            let (batch, error) = run.next(index)
            if let error {
                run.release(batch)
                close()
                throw error
            }
            if batch.size == 0 { run.release(batch); continue }
            current = batch
            return (index, batch)
        }
        close()
        return nil
    }

    /// Stops the prefetch threads and waits for them (no batch is written afterwards); idempotent.
    public func close() {
        b = until
        guard let run else { return }
        self.run = nil
        if let current { run.release(current); self.current = nil }
        run.stop(workers: workers)
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
