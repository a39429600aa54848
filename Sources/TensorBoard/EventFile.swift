import Foundation
import SwiftProtobuf

/// TensorBoard's event files: `events.out.tfevents.<seconds>.<host>.<pid>.<n>` in the run folder, a sequence of
/// TFRecords, each one serialized `Event`:
///
///     uint64 length (little-endian) · uint32 masked CRC32C of those 8 bytes · data · uint32 masked CRC32C of data
///
/// (tensorflow/core/lib/io/record_writer.cc; the mask is ((crc >> 15) | (crc << 17)) + 0xa282ead8). The first
/// record carries `file_version = "brain.Event:2"`, as TensorFlow and PyTorch's SummaryWriter write it.
public final class EventWriter {
    public let path: String
    private let handle: FileHandle

    /// Creates a new file in `directory`, never an existing one: a relaunch within the same second (a requeue,
    /// a resume) must not truncate the previous launch's events. As TensorBoard's own writer names them
    /// (tensorboard/summary/writer/event_file_writer.py: time, host, pid, a process-wide counter), with the
    /// counter raised past any file of that name. Throws when it cannot be created.
    public init(directory: String, wallTime: Date = Date()) throws {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        let stem = "events.out.tfevents.\(Int(wallTime.timeIntervalSince1970)).\(host).\(getpid())."
        var fd: Int32 = -1
        var candidate = ""
        repeat {
            candidate = (directory as NSString).appendingPathComponent(stem + String(EventWriter.nextUID()))
            fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        } while fd < 0 && errno == EEXIST
        path = candidate
        guard fd >= 0 else { throw EventFileError("cannot create \(path): \(String(cString: strerror(errno)))") }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        var first = Tensorboard_Event()
        first.wallTime = wallTime.timeIntervalSince1970
        first.fileVersion = "brain.Event:2"
        try write(first)
    }

    deinit { try? handle.close() }

    nonisolated(unsafe) private static var uid = 0
    private static let uidLock = NSLock()
    private static func nextUID() -> Int { uidLock.withLock { uid += 1; return uid - 1 } }

    /// One scalar at a global step (x axis: optimizer steps).
    public func scalar(_ tag: String, _ value: Double, step: Int, wallTime: Date = Date()) throws {
        try scalars([(tag, value)], step: step, wallTime: wallTime)
    }

    /// Several scalars of one step in one record.
    public func scalars(_ values: [(tag: String, value: Double)], step: Int, wallTime: Date = Date()) throws {
        try summary(values.map { tag, value in
            var v = Tensorboard_Summary.Value()
            v.tag = tag
            v.simpleValue = Float(value)
            return v
        }, step: step, wallTime: wallTime)
    }

    /// An image, given as a PNG file's bytes (`colorspace`: 3 RGB, 4 RGBA).
    public func image(_ tag: String, png: Data, width: Int, height: Int, colorspace: Int = 3, step: Int,
                      wallTime: Date = Date()) throws {
        var image = Tensorboard_Summary.Image()
        image.width = Int32(width)
        image.height = Int32(height)
        image.colorspace = Int32(colorspace)
        image.encodedImageString = png
        var v = Tensorboard_Summary.Value()
        v.tag = tag
        v.image = image
        try summary([v], step: step, wallTime: wallTime)
    }

    private func summary(_ values: [Tensorboard_Summary.Value], step: Int, wallTime: Date) throws {
        var e = Tensorboard_Event()
        e.wallTime = wallTime.timeIntervalSince1970
        e.step = Int64(step)
        e.summary.value = values
        try write(e)
    }

    private func write(_ event: Tensorboard_Event) throws {
        let data = try event.serializedData()
        do {
            try handle.write(contentsOf: EventRecords.frame(data))
        } catch {
            throw EventFileError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

public struct EventFileError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// TFRecord framing and reading (the reader serves tests and checks).
public enum EventRecords {
    public static func frame(_ data: Data) -> Data {
        var out = Data(capacity: data.count + 16)
        var length = UInt64(data.count).littleEndian
        let lengthBytes = withUnsafeBytes(of: &length) { Data($0) }
        out.append(lengthBytes)
        appendLE(&out, CRC32C.masked(lengthBytes))
        out.append(data)
        appendLE(&out, CRC32C.masked(data))
        return out
    }

    /// Every event of a file, each record's two checksums verified. Throws on a bad checksum or a
    /// truncated record, naming its offset.
    public static func read(_ path: String) throws -> [Tensorboard_Event] {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        var events: [Tensorboard_Event] = [], at = 0
        func u32(_ i: Int) -> UInt32 { bytes.subdata(in: i..<(i + 4)).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }.littleEndian }
        while at < bytes.count {
            guard at + 12 <= bytes.count else { throw EventFileError("\(path): truncated record header at byte \(at)") }
            let header = bytes.subdata(in: at..<(at + 8))
            let length = Int(header.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian)
            guard CRC32C.masked(header) == u32(at + 8) else { throw EventFileError("\(path): bad length checksum at byte \(at)") }
            guard length >= 0, at + 12 + length + 4 <= bytes.count else { throw EventFileError("\(path): truncated record at byte \(at)") }
            let data = bytes.subdata(in: (at + 12)..<(at + 12 + length))
            guard CRC32C.masked(data) == u32(at + 12 + length) else { throw EventFileError("\(path): bad data checksum at byte \(at)") }
            events.append(try Tensorboard_Event(serializedBytes: data))
            at += 12 + length + 4
        }
        return events
    }

    private static func appendLE(_ out: inout Data, _ v: UInt32) {
        var le = v.littleEndian
        withUnsafeBytes(of: &le) { out.append(contentsOf: $0) }
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven; and TFRecord's mask of it.
public enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    public static func checksum(_ data: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in data { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    public static func masked(_ data: Data) -> UInt32 {
        let crc = checksum(data)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
