import Foundation

/// `--data shards:DIR`: the output of `rmtrain pack`.
///
/// When all shards together fit the memory budget (`DataOptions.shardMemoryBudget`, default a quarter of
/// RAM), each shard is read whole at open with large sequential reads and its CRC-32 verified — this is
/// what makes shards fast on shared file systems, where opening millions of small files is slow. Larger
/// sets stay on disk and each record is read with one `pread` and checked against its own CRC-32.
/// A shard whose size, footer or checksum disagrees with index.json is an error naming the shard file.
public enum ShardSet {
    public static func open(_ dir: String, options: DataOptions) throws -> (train: ImageDataset, val: ImageDataset) {
        let index = try ShardIndex.read(dir)
        guard index.format == "rmtrain-shards", index.version == 1 else {
            throw DataError("shards: \(ShardIndex.path(dir)) has format \(index.format) v\(index.version), expected rmtrain-shards v1")
        }
        guard let train = index.splits["train"], let val = index.splits["val"] else {
            throw DataError("shards: \(ShardIndex.path(dir)) lacks the train or val split")
        }
        let total = (train.shards + val.shards).reduce(0) { $0 + $1.bytes }
        let budget = options.shardMemoryBudget ?? Int(ProcessInfo.processInfo.physicalMemory / 4)
        let inMemory = total <= budget
        let trainSource = try ShardSource(dir, split: "train", entry: train, inMemory: inMemory)
        let valSource = try ShardSource(dir, split: "val", entry: val, inMemory: inMemory)
        let size = options.imageSize ?? ImageDataset.defaultSize(trainSource)
        let t = ImageTransform(size: size, augPlus: options.augPlus, dctScaling: options.dctScaling)
        return (ImageDataset(name: "shards:\(dir)/train", source: trainSource, classNames: index.classes, transform: t),
                ImageDataset(name: "shards:\(dir)/val", source: valSource, classNames: index.classes, transform: t))
    }
}

/// The records of one split across its shard files.
final class ShardSource: ImageSource, @unchecked Sendable {
    struct Shard {
        let path: String
        let fd: Int32
        let memory: UnsafeMutableRawPointer?          // whole file when read into memory
    }
    private var shards: [Shard] = []
    private var records: [ShardFormat.Record] = []
    private var shardOf: [Int32] = []
    private var firstOf: [Int] = []                    // global index of each shard's first record

    init(_ dir: String, split: String, entry: ShardIndex.Split, inMemory: Bool) throws {
        for s in entry.shards {
            let path = (dir as NSString).appendingPathComponent(s.file)
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw DataError("shard \(path) is missing or unreadable: \(String(cString: strerror(errno)))") }
            var st = stat()
            fstat(fd, &st)
            let size = Int(st.st_size)
            guard size == s.bytes else {
                Glibc.close(fd)
                throw DataError("shard \(path) is damaged: \(size) bytes, index.json says \(s.bytes) (re-run rmtrain pack)")
            }
            let (footer, table): (ShardFormat.Footer, [ShardFormat.Record])
            do { (footer, table) = try ShardFormat.readTable(path, fd: fd, fileSize: size) }
            catch { Glibc.close(fd); throw error }
            guard footer.crc == s.crc32, footer.count == s.count else {
                Glibc.close(fd)
                throw DataError("shard \(path) is damaged: its footer disagrees with index.json (re-run rmtrain pack)")
            }
            var memory: UnsafeMutableRawPointer?
            if inMemory {
                let m = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
                // Large sequential reads, checksummed as they arrive.
                var done = 0, crc: UInt32 = 0
                let dataEnd = size - ShardFormat.footerSize
                while done < size {
                    let n = min(size - done, 16 << 20)
                    guard ShardFormat.preadFully(fd, m + done, n, offset: done) else {
                        m.deallocate(); Glibc.close(fd)
                        throw DataError("shard \(path): read error: \(String(cString: strerror(errno)))")
                    }
                    let covered = min(done + n, dataEnd) - done
                    if covered > 0 { crc = ShardFormat.crc32(crc, m + done, covered) }
                    done += n
                }
                guard crc == footer.crc else {
                    m.deallocate(); Glibc.close(fd)
                    throw DataError("shard \(path) is damaged: checksum mismatch (re-run rmtrain pack to rebuild it)")
                }
                memory = m
            }
            firstOf.append(records.count)
            shardOf.append(contentsOf: repeatElement(Int32(shards.count), count: table.count))
            records.append(contentsOf: table)
            shards.append(Shard(path: path, fd: fd, memory: memory))
        }
        guard records.count == entry.count else {
            throw DataError("shards: \(dir) \(split) has \(records.count) records, index.json says \(entry.count)")
        }
    }

    deinit {
        for s in shards { Glibc.close(s.fd); s.memory?.deallocate() }
    }

    var count: Int { records.count }
    func label(_ index: Int) -> Int { records[index].label }
    func describe(_ index: Int) -> String {
        let s = Int(shardOf[index])
        return "\(shards[s].path) record \(index - firstOf[s])"
    }

    func fetch(_ index: Int, _ ws: DecodeWorkspace) throws -> SourceImage {
        let r = records[index]
        let shard = shards[Int(shardOf[index])]
        if r.kind == .bad { throw BadImage(describe(index), "the source image was unreadable when packed") }
        let bytes: UnsafeRawPointer
        if let m = shard.memory {
            bytes = UnsafeRawPointer(m + r.offset)
        } else {
            let p = ws.file.reserve(max(r.length, 1))
            guard ShardFormat.preadFully(shard.fd, p, r.length, offset: r.offset) else {
                throw BadImage(describe(index), "read error: \(String(cString: strerror(errno)))")
            }
            guard ShardFormat.crc32(0, p, r.length) == r.crc else {
                throw BadImage(describe(index), "checksum mismatch (damaged shard; re-run rmtrain pack)")
            }
            bytes = UnsafeRawPointer(p)
        }
        switch r.kind {
        case .raw:
            guard r.length == r.width * r.height * 3 else { throw BadImage(describe(index), "raw record of the wrong size") }
            return .pixels(bytes.assumingMemoryBound(to: UInt8.self), width: r.width, height: r.height)
        default:
            return .encoded(UnsafeRawBufferPointer(start: bytes, count: r.length))
        }
    }
}
