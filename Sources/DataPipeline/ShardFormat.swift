import Kernels
import CZlib
import Foundation

/// The packed-shard format written by `rmtrain pack` and read by `--data shards:DIR`.
///
/// `DIR/index.json` (written last, atomically) names the encoding, the class list and, per split
/// (`train`, `val`), its shard files with their image counts, sizes and CRC-32s. Images keep the image
/// folder's order, so index i of the shards is index i of the folder (same labels, same random streams).
///
/// A shard file is self-describing:
///
///     "RMSHARD1"                       8 bytes
///     record payloads, back to back    raw RGB (width·height·3 bytes) or an encoded JPEG/PNG file
///     record table                     32 bytes per record, little-endian:
///                                      offset u64, length u32, crc32 u32, label u32, width u32,
///                                      height u32, kind u8 (0 raw RGB, 1 encoded, 2 bad), 3 zero bytes
///     footer                           40 bytes: "RMSFOOT1", table offset u64, record count u64,
///                                      source digest u64, crc32 u32 of everything before the footer, 0 u32
///
/// The footer's CRC-32 is the shard's checksum (also in index.json); each record's own CRC-32 lets a
/// loader that reads record by record detect damage without reading the whole shard. A record of kind
/// "bad" keeps the index of an image that could not be read at packing time; loading it is a bad image.
enum ShardFormat {
    static let magic = Array("RMSHARD1".utf8)
    static let footerMagic = Array("RMSFOOT1".utf8)
    static let recordSize = 32
    static let footerSize = 40

    enum Kind: UInt8 { case raw = 0, encoded = 1, bad = 2 }

    struct Record {
        var offset: Int, length: Int, crc: UInt32, label: Int, width: Int, height: Int, kind: Kind
    }

    struct Footer {
        var tableOffset: Int, count: Int, sourceDigest: UInt64, crc: UInt32
    }

    static func fileName(split: String, shard: Int, of total: Int) -> String {
        String(format: "%@-%05d-of-%05d.rms", split, shard, total)
    }

    static func encode(_ r: Record, into out: inout [UInt8]) {
        put(UInt64(r.offset), 8, &out); put(UInt64(r.length), 4, &out); put(UInt64(r.crc), 4, &out)
        put(UInt64(r.label), 4, &out); put(UInt64(r.width), 4, &out); put(UInt64(r.height), 4, &out)
        out.append(r.kind.rawValue); out.append(contentsOf: [0, 0, 0])
    }

    static func decodeRecord(_ b: UnsafeRawPointer) -> Record? {
        guard let kind = Kind(rawValue: b.load(fromByteOffset: 28, as: UInt8.self)) else { return nil }
        return Record(offset: Int(get(b, 0, 8)), length: Int(get(b, 8, 4)), crc: UInt32(get(b, 12, 4)),
                      label: Int(get(b, 16, 4)), width: Int(get(b, 20, 4)), height: Int(get(b, 24, 4)), kind: kind)
    }

    static func encode(_ f: Footer) -> [UInt8] {
        var out = footerMagic
        put(UInt64(f.tableOffset), 8, &out); put(UInt64(f.count), 8, &out); put(f.sourceDigest, 8, &out)
        put(UInt64(f.crc), 4, &out); put(0, 4, &out)
        return out
    }

    static func decodeFooter(_ b: [UInt8]) -> Footer? {
        guard b.count == footerSize, Array(b[0..<8]) == footerMagic else { return nil }
        return b.withUnsafeBytes { p in
            Footer(tableOffset: Int(get(p.baseAddress!, 8, 8)), count: Int(get(p.baseAddress!, 16, 8)),
                   sourceDigest: get(p.baseAddress!, 24, 8), crc: UInt32(get(p.baseAddress!, 32, 4)))
        }
    }

    private static func put(_ v: UInt64, _ n: Int, _ out: inout [UInt8]) {
        for i in 0..<n { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }
    private static func get(_ b: UnsafeRawPointer, _ o: Int, _ n: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(b.load(fromByteOffset: o + i, as: UInt8.self)) << (8 * UInt64(i)) }
        return v
    }

    static func crc32(_ crc: UInt32, _ p: UnsafeRawPointer, _ n: Int) -> UInt32 {
        var c = uLong(crc), done = 0
        while done < n {
            let k = min(n - done, 1 << 30)
            c = CZlib.crc32(c, p.advanced(by: done).assumingMemoryBound(to: Bytef.self), uInt(k))
            done += k
        }
        return UInt32(c)
    }

    /// FNV-1a over the inputs of a shard (relative paths, labels, packing settings): a completed shard
    /// is reused by a re-run only when it was made from the same inputs.
    static func digest(_ parts: [String]) -> UInt64 {
        var h = FNV1a()
        for part in parts { h.add(part.utf8); h.add(CollectionOfOne(0xFF)) }
        return h.value
    }

    /// Reads and checks the footer and table of a shard file (not the payloads).
    static func readTable(_ path: String, fd: Int32, fileSize: Int) throws -> (Footer, [Record]) {
        guard fileSize >= magic.count + footerSize else { throw DataError("shard \(path) is damaged: only \(fileSize) bytes") }
        var fbytes = [UInt8](repeating: 0, count: footerSize)
        guard preadFully(fd, &fbytes, offset: fileSize - footerSize), let footer = decodeFooter(fbytes) else {
            throw DataError("shard \(path) is damaged: no valid footer (incomplete write?)")
        }
        let tableBytes = footer.count * recordSize
        guard footer.tableOffset >= magic.count, footer.tableOffset + tableBytes == fileSize - footerSize else {
            throw DataError("shard \(path) is damaged: its record table does not fit the file")
        }
        var table = [UInt8](repeating: 0, count: tableBytes)
        guard preadFully(fd, &table, offset: footer.tableOffset) else { throw DataError("shard \(path): cannot read its record table") }
        var records: [Record] = []
        records.reserveCapacity(footer.count)
        try table.withUnsafeBytes { t in
            for i in 0..<footer.count {
                guard let r = decodeRecord(t.baseAddress! + i * recordSize),
                      r.offset >= magic.count, r.offset + r.length <= footer.tableOffset else {
                    throw DataError("shard \(path) is damaged: record \(i) is out of bounds")
                }
                records.append(r)
            }
        }
        return (footer, records)
    }

    static func preadFully(_ fd: Int32, _ buf: inout [UInt8], offset: Int) -> Bool {
        buf.withUnsafeMutableBytes { preadFully(fd, $0.baseAddress!, $0.count, offset: offset) }
    }

    static func preadFully(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ n: Int, offset: Int) -> Bool {
        var done = 0
        while done < n {
            let r = pread(fd, p + done, n - done, off_t(offset + done))
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { return false }
            done += r
        }
        return true
    }
}

/// `DIR/index.json`.
struct ShardIndex: Codable {
    var format = "rmtrain-shards"
    var version = 1
    var encoding: String
    var shortSide: Int?
    var quality: Int
    var classes: [String]
    var splits: [String: Split]

    struct Split: Codable {
        var source: String
        var count: Int
        var badImages: Int
        var shards: [Shard]
    }
    struct Shard: Codable {
        var file: String
        var count: Int
        var bytes: Int
        var crc32: UInt32
    }

    static func path(_ dir: String) -> String { (dir as NSString).appendingPathComponent("index.json") }

    static func read(_ dir: String) throws -> ShardIndex {
        let p = path(dir)
        guard let data = FileManager.default.contents(atPath: p) else {
            throw DataError(ImageFolder.isDirectory(dir) ? "shards: \(p) is missing (make the shards with rmtrain pack)"
                                                         : "shards: folder \(dir) does not exist")
        }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        do { return try d.decode(ShardIndex.self, from: data) }
        catch { throw DataError("shards: \(p) is not a valid shard index (\(error))") }
    }

    func write(_ dir: String) throws {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        let p = ShardIndex.path(dir)
        do { try e.encode(self).write(to: URL(fileURLWithPath: p), options: .atomic) }
        catch { throw DataError("pack: cannot write \(p): \(error.localizedDescription)") }
    }
}
