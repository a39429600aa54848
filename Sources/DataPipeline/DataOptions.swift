import Foundation
import Kernels

/// How the data sets behind `--data` are read and augmented. The command fills it from its data flags;
/// tests build it directly. `nil` fields mean "the data set's own default".
public struct DataOptions: Sendable {
    /// Output height and width. Default: 32 when the first training image is at most 32×32 pixels
    /// (CIFAR-like), else 224. Sizes ≤ 32 use the CIFAR pipeline, larger ones the ImageNet pipeline
    /// (see `ImageTransform`).
    public var imageSize: Int?
    /// The output sizes the pipelines support (every `--image-size` flag checks against this).
    public static let imageSizes = 8...4096
    /// Folder (image folders) used for evaluation; default `val`, else `test`.
    public var valSplit: String?
    /// What a corrupt or unreadable image does (see `BadImagePolicy`).
    public var badImage: BadImagePolicy = .skip
    /// Background threads that decode and augment whole batches ahead of the training loop;
    /// 0 loads each batch in the calling thread (spread over `Parallel.threads`).
    public var loaderThreads = 1
    /// ColorJitter(0.4, 0.4, 0.4) in random order and PCA lighting(0.1) after crop and flip.
    public var augPlus = false
    /// Decode JPEGs at a reduced size in the DCT domain when the output needs fewer pixels (on by default;
    /// tests switch it off to compare).
    public var dctScaling = true
    /// Packed shards whose total size is at most this many bytes are read whole into memory (large
    /// sequential reads, checksum verified at open); larger sets are read record by record. Default: a
    /// quarter of physical memory.
    public var shardMemoryBudget: Int?
    /// Asked while an image folder is listed (millions of files can take minutes): true stops the listing
    /// with `DataInterrupted` (a preemption request).
    public var shouldStop: (@Sendable () -> Bool)?

    public init() {}
}

/// Opening the data stopped because `DataOptions.shouldStop` said so.
public struct DataInterrupted: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "interrupted while listing the data" }
}

/// `--bad-image skip|fail`.
///
/// `skip` (the default): the image is counted, its path logged (the first few), and
///   * in training (augmenting loaders) it is **replaced** by the next data-set index that loads
///     (index + 1, + 2, … modulo the count), augmented with that index's own random stream, so batches keep
///     their size on every rank and stay a pure function of (seed, epoch, index);
///   * in evaluation it is **dropped** from its batch, so no other image is counted twice.
/// `fail`: the first bad image stops the run with an error naming the file.
public enum BadImagePolicy: String, Sendable, CaseIterable {
    case skip, fail
}

/// A sample that cannot be read or decoded: a truncated or corrupt file, an unsupported format, a damaged
/// shard record. Loaders catch it and apply the `BadImagePolicy`.
public struct BadImage: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(_ path: String, _ reason: String) { self.path = path; self.reason = reason }
    public var description: String { "\(path): \(reason)" }
}

/// Counts skipped images across the loaders of a run and logs the first few paths. Shared by the train
/// and evaluation loaders of one `DataSplits`; `count` is what the trainer writes as `bad_images`.
public final class BadImageLog: @unchecked Sendable {
    public let limit: Int
    private let lock = NSLock()
    private let sink: @Sendable (String) -> Void
    private var seen = Set<String>()
    private var logged: [String] = []
    private var firstBad: BadImage?
    private var anyRead = false
    private var damaged = Set<String>()
    private var damagedLogged = 0

    /// `sink` receives one line per logged path (stderr by default).
    public init(limit: Int = 5, sink: @escaping @Sendable (String) -> Void = BadImageLog.standardError) {
        self.limit = limit
        self.sink = sink
    }

    public static let standardError: @Sendable (String) -> Void = { line in Console.errorLine(line) }

    /// Distinct bad images met so far (a file met again in a later epoch counts once).
    public var count: Int { lock.lock(); defer { lock.unlock() }; return seen.count }
    /// Paths logged so far (at most `limit`, each once).
    public var loggedPaths: [String] { lock.lock(); defer { lock.unlock() }; return logged }
    /// The first bad image met, for the message when nothing can be read.
    public var first: BadImage? { lock.lock(); defer { lock.unlock() }; return firstBad }
    /// Whether any image was read at all.
    public var anyImageRead: Bool { lock.lock(); defer { lock.unlock() }; return anyRead }

    /// Distinct images decoded with a warning (`recordDamaged`): loaded, not counted as bad.
    public var damagedCount: Int { lock.lock(); defer { lock.unlock() }; return damaged.count }

    /// Called for every image read (a lock per image: nothing beside a decode).
    func noteRead() {
        lock.lock(); anyRead = true; lock.unlock()
    }

    public func record(_ bad: BadImage) {
        lock.lock()
        if firstBad == nil { firstBad = bad }
        var line: String?
        if seen.insert(bad.path).inserted, logged.count < limit {
            logged.append(bad.path)
            line = "\(Diagnostics.rankPrefix)rmtrain: warning: skipped bad image \(bad.path): \(bad.reason)"
            if logged.count == limit { line! += " (further bad images are counted in bad_images, not logged)" }
        }
        lock.unlock()
        if let line { sink(line) }
    }

    /// An image that loaded although its data is damaged (libjpeg's warning in `bad.reason`).
    public func recordDamaged(_ bad: BadImage) {
        lock.lock()
        var line: String?
        if damaged.insert(bad.path).inserted, damagedLogged < limit {
            damagedLogged += 1
            line = "\(Diagnostics.rankPrefix)rmtrain: warning: damaged image \(bad.path) decoded as far as its data goes: \(bad.reason)"
            if damagedLogged == limit { line! += " (further damaged images are not logged)" }
        }
        lock.unlock()
        if let line { sink(line) }
    }
}

/// A growable raw buffer owned by one thread at a time (scratch space reused across samples, so the
/// steady state allocates nothing).
final class Scratch<T> {
    private(set) var pointer: UnsafeMutablePointer<T>
    private(set) var capacity: Int

    init(_ capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        pointer = .allocate(capacity: self.capacity)
    }
    deinit { pointer.deallocate() }

    /// At least `n` elements; contents are not kept when it grows.
    func reserve(_ n: Int) -> UnsafeMutablePointer<T> {
        if n > capacity {
            pointer.deallocate()
            capacity = max(n, capacity * 3 / 2)
            pointer = .allocate(capacity: capacity)
        }
        return pointer
    }
}

/// A lock-protected free list of per-thread workspaces: `load` may run on any thread, and workspaces
/// (decoder handles, pixel buffers) are too large to allocate per sample.
final class Pool<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [T] = []
    private let make: () -> T
    init(_ make: @escaping () -> T) { self.make = make }

    func with<R>(_ body: (T) throws -> R) rethrows -> R {
        lock.lock()
        let item = free.popLast()
        lock.unlock()
        let it = item ?? make()
        defer { lock.lock(); free.append(it); lock.unlock() }
        return try body(it)
    }
}
