import Foundation

/// Reads and writes the safetensors format (8-byte little-endian header length, a JSON header of
/// {name: {dtype, shape, data_offsets}}, then raw little-endian data). Written as F32 (and I64 counters);
/// read from F32, F16 or BF16 (I64 entries are skipped).
/// It is what PyTorch tooling loads, and what our golden files and weight dumps use.
public enum SafeTensors {
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let values: [Float]
        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name; self.shape = shape; self.values = values
        }
    }

    public struct FormatError: Error, CustomStringConvertible {
        public let description: String
    }

    /// An int64 tensor (for PyTorch's `num_batches_tracked` counters).
    public struct Int64Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let values: [Int64]
        public init(name: String, shape: [Int], values: [Int64]) { self.name = name; self.shape = shape; self.values = values }
    }

    public static func encode(_ entries: [Entry], int64: [Int64Entry] = [], metadata: [String: String] = [:]) -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for e in entries {
            let bytes = e.values.count * 4
            header[e.name] = ["dtype": "F32", "shape": e.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        for e in int64 {
            let bytes = e.values.count * 8
            header[e.name] = ["dtype": "I64", "shape": e.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (json.count + 8) % 8 != 0 { json.append(0x20) }
        var out = Data()
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        for e in entries { e.values.withUnsafeBytes { out.append(contentsOf: $0) } }
        for e in int64 { e.values.withUnsafeBytes { out.append(contentsOf: $0) } }
        return out
    }

    public static func decode(_ data: Data, source: String = "safetensors data") throws -> [String: Entry] {
        guard data.count >= 8 else { throw FormatError(description: "\(source): shorter than a safetensors header") }
        let n = data.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard n > 0, 8 + n <= data.count else { throw FormatError(description: "\(source): header length \(n) exceeds the file") }
        guard let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] else {
            throw FormatError(description: "\(source): header is not a JSON object")
        }
        let base = 8 + n
        var out: [String: Entry] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let d = value as? [String: Any], let dtype = d["dtype"] as? String,
                  let shape = d["shape"] as? [Int], let offs = d["data_offsets"] as? [Int], offs.count == 2 else {
                throw FormatError(description: "\(source): bad entry \(name)")
            }
            if dtype == "I64" { continue }     // counters (num_batches_tracked); not needed as floats
            // F16 and BF16 (how pretrained weights are often shipped) widen to F32 exactly.
            let width = ["F32": 4, "F16": 2, "BF16": 2][dtype]
            guard let width else { throw FormatError(description: "\(source): \(name) has dtype \(dtype), expected F32, F16 or BF16") }
            guard offs[0] >= 0, offs[0] <= offs[1], base + offs[1] <= data.count, offs[1] - offs[0] == shape.reduce(1, *) * width else {
                throw FormatError(description: "\(source): \(name) data out of range (truncated file?)")
            }
            let values: [Float] = data.subdata(in: (base + offs[0])..<(base + offs[1])).withUnsafeBytes { raw in
                (0..<(raw.count / width)).map { i -> Float in
                    if width == 4 { return Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
                    let h = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
                    return dtype == "BF16" ? Float(bitPattern: UInt32(h) << 16) : Float(Float16(bitPattern: h))
                }
            }
            out[name] = Entry(name: name, shape: shape, values: values)
        }
        return out
    }

    /// The `__metadata__` strings of a file (empty when it has none).
    public static func metadata(_ path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path), data.count >= 8 else {
            throw FormatError(description: "cannot read \(path)")
        }
        let n = data.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard n > 0, 8 + n <= data.count,
              let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] else {
            throw FormatError(description: "\(path): bad safetensors header")
        }
        return header["__metadata__"] as? [String: String] ?? [:]
    }

    public static func read(_ path: String) throws -> [String: Entry] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FormatError(description: "cannot read \(path)")
        }
        return try decode(data, source: path)
    }
}
