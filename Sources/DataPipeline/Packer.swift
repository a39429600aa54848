import Foundation

/// Settings of `rmtrain pack`.
public struct PackOptions: Sendable {
    public enum Encoding: String, Sendable, CaseIterable { case jpeg, raw }
    /// Images whose short side is longer are resized (antialiased bilinear) to this short side; nil keeps sizes.
    public var shortSide: Int?
    /// Shards of the train split; the evaluation split gets a proportional number (at least one).
    public var shards = 16
    /// `jpeg`: a JPEG that needs no resizing is stored byte for byte (no generation loss); other images are
    /// re-encoded at `quality`. `raw`: decoded RGB bytes (larger, no decoding when training).
    public var encoding: Encoding = .jpeg
    public var quality = 90
    public var threads = 1
    public var badImage: BadImagePolicy = .skip
    public var valSplit: String?
    /// Pack only the first N images of each split (quick runs).
    public var limit: Int?
    public init() {}
}

/// Progress of one split: images done of total, shards reused from an earlier run.
public struct PackProgress: Sendable {
    public let split: String
    public let done: Int, total: Int
    public let reusedShards: Int
}

/// Converts an image folder into packed shards (format: `ShardFormat`). Each shard is written to
/// `NAME.tmp` and renamed when complete; a re-run keeps every shard whose footer matches its inputs and
/// whose checksum verifies, so an interrupted pack resumes where it stopped. index.json is written last.
public final class Packer: @unchecked Sendable {
    public let root: String, out: String
    public let options: PackOptions
    let badImages: BadImageLog
    private let lock = NSLock()
    private var done = 0

    public init(source root: String, out: String, options: PackOptions, badImages: BadImageLog = BadImageLog()) {
        self.root = root; self.out = out; self.options = options; self.badImages = badImages
    }

    /// Packs both splits; returns the number of shards reused per split.
    @discardableResult
    public func run(progress: @escaping @Sendable (PackProgress) -> Void = { _ in }) throws -> [String: Int] {
        let (train, val) = try ImageFolder.listSplits(root, valSplit: options.valSplit)
        do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) }
        catch { throw DataError("pack: cannot create \(out): \(error.localizedDescription)") }
        let trainCount = min(train.paths.count, options.limit ?? .max)
        let valCount = min(val.paths.count, options.limit ?? .max)
        let valShards = max(1, Int((Double(options.shards) * Double(valCount) / Double(max(trainCount, 1))).rounded(.up)))
        var index = ShardIndex(encoding: options.encoding.rawValue, shortSide: options.shortSide, quality: options.quality,
                               classes: train.classes, splits: [:])
        var reused: [String: Int] = [:]
        for (name, listing, n, shards) in [("train", train, trainCount, options.shards), ("val", val, valCount, valShards)] {
            let (entry, r) = try pack(name, listing, count: n, shards: min(shards, max(n, 1)), progress: progress)
            index.splits[name] = entry
            reused[name] = r
        }
        try index.write(out)
        return reused
    }

    private func pack(_ split: String, _ listing: ImageFolder.Listing, count n: Int, shards: Int,
                      progress: @escaping @Sendable (PackProgress) -> Void) throws -> (ShardIndex.Split, Int) {
        let state = PackState(shards: shards)
        lock.lock(); done = 0; lock.unlock()
        let workers = max(1, min(options.threads, shards))
        // Workers take whole shards; each has its own decoder workspace.
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let ws = DecodeWorkspace()
            while let k = state.take() {
                let range = (k * n / shards)..<((k + 1) * n / shards)
                do {
                    let result = try packShard(split, k, of: shards, listing, range, ws) { d in
                        self.lock.lock(); self.done += d; let now = self.done; self.lock.unlock()
                        progress(PackProgress(split: split, done: now, total: n, reusedShards: 0))
                    }
                    state.finish(k, result)
                } catch {
                    state.fail(error)
                }
            }
        }
        if let failure = state.failure { throw failure }
        let reused = state.results.filter { $0!.2 }.count
        progress(PackProgress(split: split, done: n, total: n, reusedShards: reused))
        return (ShardIndex.Split(source: (listing.directory as NSString).lastPathComponent, count: n,
                                 badImages: state.results.reduce(0) { $0 + $1!.1 }, shards: state.results.map { $0!.0 }),
                reused)
    }

    /// Writes (or verifies and keeps) one shard. Returns its index entry, its bad records, whether it was kept.
    private func packShard(_ split: String, _ k: Int, of total: Int, _ listing: ImageFolder.Listing, _ range: Range<Int>,
                           _ ws: DecodeWorkspace, _ advance: (Int) -> Void) throws -> (ShardIndex.Shard, Int, Bool) {
        let name = ShardFormat.fileName(split: split, shard: k, of: total)
        let path = (out as NSString).appendingPathComponent(name)
        let base = listing.directory
        var parts = ["\(options.encoding.rawValue) \(options.shortSide ?? 0) \(options.quality)"]
        for i in range { parts.append(String(listing.paths[i].dropFirst(base.count))); parts.append(String(listing.labels[i])) }
        let digest = ShardFormat.digest(parts)
        if let kept = try? verify(path, digest: digest, count: range.count) {
            advance(range.count)
            return (ShardIndex.Shard(file: name, count: range.count, bytes: kept.bytes, crc32: kept.crc), kept.bad, true)
        }
        let writer = try ShardWriter(path + ".tmp")
        var records: [ShardFormat.Record] = []
        var badCount = 0
        for i in range {
            var rec = ShardFormat.Record(offset: writer.offset, length: 0, crc: 0, label: Int(listing.labels[i]),
                                         width: 0, height: 0, kind: .bad)
            do {
                let (bytes, kind, w, h) = try encode(listing.paths[i], ws)
                rec.kind = kind; rec.width = w; rec.height = h; rec.length = bytes.count
                rec.crc = bytes.withUnsafeBytes { ShardFormat.crc32(0, $0.baseAddress!, $0.count) }
                try writer.write(bytes)
            } catch let e as BadImage {
                if options.badImage == .fail { writer.abandon(); throw DataError("pack: bad image \(e) (--bad-image fail)") }
                badImages.record(e)
                badCount += 1
            }
            records.append(rec)
            advance(1)
        }
        let tableOffset = writer.offset
        var table: [UInt8] = []
        table.reserveCapacity(records.count * ShardFormat.recordSize)
        for r in records { ShardFormat.encode(r, into: &table) }
        try writer.write(table)
        let footer = ShardFormat.Footer(tableOffset: tableOffset, count: records.count, sourceDigest: digest, crc: writer.crc)
        try writer.write(ShardFormat.encode(footer), checksummed: false)
        try writer.finish(renameTo: path)
        return (ShardIndex.Shard(file: name, count: records.count, bytes: writer.offset, crc32: footer.crc), badCount, false)
    }

    /// A finished shard from an earlier run, if it was made from the same inputs and its checksum holds.
    private func verify(_ path: String, digest: UInt64, count: Int) throws -> (bytes: Int, crc: UInt32, bad: Int) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DataError("absent") }
        defer { Glibc.close(fd) }
        var st = stat()
        fstat(fd, &st)
        let size = Int(st.st_size)
        let (footer, records) = try ShardFormat.readTable(path, fd: fd, fileSize: size)
        guard footer.sourceDigest == digest, footer.count == count else { throw DataError("stale") }
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 16 << 20, alignment: 64)
        defer { buf.deallocate() }
        var crc: UInt32 = 0, done = 0
        let end = size - ShardFormat.footerSize
        while done < end {
            let n = min(end - done, 16 << 20)
            guard ShardFormat.preadFully(fd, buf, n, offset: done) else { throw DataError("unreadable") }
            crc = ShardFormat.crc32(crc, buf, n)
            done += n
        }
        guard crc == footer.crc else { throw DataError("checksum") }
        return (size, crc, records.filter { $0.kind == .bad }.count)
    }

    /// One image as stored: the original JPEG bytes when they can be kept, else re-encoded or raw RGB.
    private func encode(_ path: String, _ ws: DecodeWorkspace) throws -> ([UInt8], ShardFormat.Kind, Int, Int) {
        let n = try readFile(path, into: ws.file)
        let image = SourceImage.encoded(UnsafeRawBufferPointer(start: ws.file.pointer, count: n))
        do {
            let (w, h) = try ImageDecoder.size(image, ws)
            var target = (w, h)
            if let s = options.shortSide, min(w, h) > s {
                target = w <= h ? (s, Int(Double(s) * Double(h) / Double(w))) : (Int(Double(s) * Double(w) / Double(h)), s)
            }
            let isJPEG = JPEGCodec.isJPEG(UnsafeRawBufferPointer(start: ws.file.pointer, count: n))
            if options.encoding == .jpeg && isJPEG && target == (w, h) {
                _ = try ImageDecoder.decode(image, minimum: nil, ws)          // proves it decodes
                return (Array(UnsafeBufferPointer(start: ws.file.pointer, count: n)), .encoded, w, h)
            }
            let d = try ImageDecoder.decode(image, minimum: (Double(target.0), Double(target.1)), ws)
            var rgb: [UInt8]
            if (d.width, d.height) == target {
                rgb = Array(UnsafeBufferPointer(start: d.pixels, count: d.width * d.height * 3))
            } else {
                rgb = resize(d, to: target, ws)
            }
            if options.encoding == .raw { return (rgb, .raw, target.0, target.1) }
            let jpeg = try rgb.withUnsafeBufferPointer {
                try ws.jpeg.encode($0.baseAddress!, width: target.0, height: target.1, quality: options.quality)
            }
            return (jpeg, .encoded, target.0, target.1)
        } catch let e as DecodeFailure {
            throw BadImage(path, e.description)
        }
    }

    private func resize(_ d: ImageDecoder.Decoded, to t: (Int, Int), _ ws: DecodeWorkspace) -> [UInt8] {
        let (xt, yt) = ws.tables
        xt.compute(lo: 0, hi: d.width, in0: 0, in1: Double(d.width), outSize: t.0, first: 0, count: t.0)
        yt.compute(lo: 0, hi: d.height, in0: 0, in1: Double(d.height), outSize: t.1, first: 0, count: t.1)
        let f = ws.base.reserve(t.0 * t.1 * 3)
        Resampler.run(src: d.pixels, srcStride: d.width * 3, x: xt, y: yt, dst: f, dstStride: t.0 * 3,
                      gain: SIMD3(repeating: 1), bias: SIMD3(repeating: 0), tmp: ws.tmp)
        return (0..<(t.0 * t.1 * 3)).map { UInt8(max(0, min(255, f[$0].rounded()))) }
    }
}

/// The shared work list of one split's packing workers.
private final class PackState: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private let shards: Int
    private(set) var results: [(ShardIndex.Shard, Int, Bool)?]
    private(set) var failure: Error?
    init(shards: Int) { self.shards = shards; results = Array(repeating: nil, count: shards) }

    /// The next shard to pack, or nil when all are taken or one failed.
    func take() -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard failure == nil, next < shards else { return nil }
        next += 1
        return next - 1
    }
    func finish(_ k: Int, _ r: (ShardIndex.Shard, Int, Bool)) { lock.lock(); results[k] = r; lock.unlock() }
    func fail(_ e: Error) { lock.lock(); if failure == nil { failure = e }; lock.unlock() }
}

/// Buffered writes of one shard to a temporary file, with a running CRC-32; renamed into place when done.
final class ShardWriter {
    let tmpPath: String
    private let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var offset = 0
    private(set) var crc: UInt32 = 0

    init(_ tmpPath: String) throws {
        self.tmpPath = tmpPath
        fd = Glibc.open(tmpPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DataError("pack: cannot create \(tmpPath): \(String(cString: strerror(errno)))") }
        buffer.reserveCapacity(8 << 20)
        try write(ShardFormat.magic)
    }

    func write(_ bytes: [UInt8], checksummed: Bool = true) throws {
        if checksummed { crc = bytes.withUnsafeBytes { ShardFormat.crc32(crc, $0.baseAddress!, $0.count) } }
        buffer.append(contentsOf: bytes)
        offset += bytes.count
        if buffer.count >= 8 << 20 { try flush() }
    }

    private func flush() throws {
        try buffer.withUnsafeBytes { b in
            var done = 0
            while done < b.count {
                let r = Glibc.write(fd, b.baseAddress! + done, b.count - done)
                if r < 0 && errno == EINTR { continue }
                guard r > 0 else { throw DataError("pack: cannot write \(tmpPath): \(String(cString: strerror(errno)))") }
                done += r
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    func finish(renameTo path: String) throws {
        try flush()
        fsync(fd)
        Glibc.close(fd)
        guard Glibc.rename(tmpPath, path) == 0 else {
            throw DataError("pack: cannot rename \(tmpPath) to \(path): \(String(cString: strerror(errno)))")
        }
    }

    func abandon() {
        Glibc.close(fd)
        unlink(tmpPath)
    }
}
