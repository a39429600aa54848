import Foundation
import Kernels

/// Everything a run needs to continue exactly: one file per save, written by rank 0 after gathering the
/// per-rank state (each rank's RecursiveMix history). One file, not one per rank plus a marker: a save is
/// then a single atomic rename, and a checkpoint can be verified, copied or moved as one thing. The cost is
/// that rank 0 holds every rank's history while writing (about 1 MB per rank for CIFAR, 40 MB per rank for
/// ImageNet at batch 64), which is fine up to hundreds of ranks.
///
/// Layout: "RMCKPT\0\0", UInt64 LE header length, the header as JSON, then the sections, each a zstd frame
/// with its content checksum; the header also holds each section's FNV-1a hash of the uncompressed bytes
/// and its sizes, so truncation and corruption are both detected before anything is used.
public struct CheckpointState {
    public var header: CheckpointHeader
    /// Parameters, BN buffers and optimizer momentum, shared by all ranks (names: `CheckpointNames`).
    public var tensors: [SafeTensors.Entry]
    /// Per-rank state, index = rank (RecursiveMix history).
    public var ranks: [[SafeTensors.Entry]]

    public init(header: CheckpointHeader, tensors: [SafeTensors.Entry], ranks: [[SafeTensors.Entry]]) {
        self.header = header
        self.tensors = tensors
        self.ranks = ranks
    }
}

public struct CheckpointHeader: Codable, Equatable, Sendable {
    public static let currentFormat = 1
    public var format = CheckpointHeader.currentFormat
    public var model: String
    public var shapes: [String: [Int]]
    /// The configuration as `name=value` lines and its hash (see TrainConfig.fingerprint).
    public var configuration: [String]
    public var configurationHash: String
    public var worldSize: Int
    /// Epoch (0-based) and batch within it where training continues; global optimizer step.
    public var epoch: Int
    public var batchInEpoch: Int
    public var step: Int
    /// Validation top-1 of every finished epoch, for best-so-far tracking.
    public var valTop1History: [Double]
    /// What the model was trained to take: nil in checkpoints written before it was kept (their readers fall
    /// back to the flags and the data's defaults and say so). Optional, so those files still decode.
    public var input: InputSpec?
    public var sections: [Section] = []

    public struct Section: Codable, Equatable, Sendable {
        public var name: String
        public var offset: Int
        public var compressedSize: Int
        public var rawSize: Int
        public var fnv1a: String
    }

    public init(model: String, shapes: [String: [Int]], configuration: [String], configurationHash: String,
                worldSize: Int, epoch: Int, batchInEpoch: Int, step: Int, valTop1History: [Double]) {
        self.model = model
        self.shapes = shapes
        self.configuration = configuration
        self.configurationHash = configurationHash
        self.worldSize = worldSize
        self.epoch = epoch
        self.batchInEpoch = batchInEpoch
        self.step = step
        self.valTop1History = valTop1History
    }
}

/// The model's input as training fed it, what `eval`, `export` and `--init-weights` take by default: the
/// evaluation transform (torchvision terms: the image side after the crop, the resize rule before it,
/// `Normalize(mean, std)`) and the class names in label order (label i is `classNames[i]`).
public struct InputSpec: Codable, Equatable, Sendable {
    /// Height and width of the model's input.
    public var imageSize: Int
    public var channels: Int
    /// The evaluation resize rule, as `ImageTransform.Pipeline` names it: `cifar` (the image as is, resized to
    /// size×size when it is another size), `imageNet` (short side to ⌊size/0.875⌋, centre crop), `none` (fixed-size data).
    public var resize: String
    public var mean: [Float]
    public var std: [Float]
    public var classNames: [String]

    public init(imageSize: Int, channels: Int, resize: String, mean: [Float], std: [Float], classNames: [String]) {
        (self.imageSize, self.channels, self.resize, self.mean, self.std) = (imageSize, channels, resize, mean, std)
        self.classNames = classNames
    }
}

public enum CheckpointFile {
    static let magic: [UInt8] = Array("RMCKPT".utf8) + [0, 0]

    public static func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 { FNV1a.hash(bytes) }

    /// The file's bytes.
    public static func encode(_ state: CheckpointState, level: Int32) throws -> [UInt8] {
        var payloads: [(String, Data)] = [(CheckpointNames.sharedSection, SafeTensors.encode(state.tensors))]
        for (r, entries) in state.ranks.enumerated() { payloads.append((CheckpointNames.rankSection(r), SafeTensors.encode(entries))) }
        var header = state.header
        header.sections = []
        var body: [UInt8] = []
        for (name, raw) in payloads {
            let (compressed, hash) = try raw.withUnsafeBytes { buf in (try Zstd.compress(buf, level: level), fnv1a(buf)) }
            header.sections.append(.init(name: name, offset: body.count, compressedSize: compressed.count,
                                         rawSize: raw.count, fnv1a: String(hash, radix: 16)))
            body += compressed
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(header)
        var out = magic
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out += $0 }
        out += json
        out += body
        return out
    }

    /// Reads only the header (cheap): what a resume decision needs.
    public static func readHeader(_ bytes: [UInt8], source: String) throws -> (CheckpointHeader, Int) {
        guard bytes.count >= 16, Array(bytes[0..<8]) == magic else {
            throw CheckpointError("\(source): not an rmtrain checkpoint (bad magic or empty file)")
        }
        let n = bytes[8..<16].withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard n > 0, 16 + n <= bytes.count else { throw CheckpointError("\(source): truncated header") }
        let header: CheckpointHeader
        do { header = try JSONDecoder().decode(CheckpointHeader.self, from: Data(bytes[16..<(16 + n)])) }
        catch { throw CheckpointError("\(source): unreadable header (\(error))") }
        guard header.format == CheckpointHeader.currentFormat else {
            throw CheckpointError("\(source): checkpoint format \(header.format), this rmtrain reads \(CheckpointHeader.currentFormat)")
        }
        return (header, 16 + n)
    }

    /// Decodes and verifies every section (sizes, zstd checksums, FNV hashes).
    public static func decode(_ bytes: [UInt8], source: String) throws -> CheckpointState {
        let (header, start) = try readHeader(bytes, source: source)
        let expectedEnd = start + header.sections.reduce(0) { $0 + $1.compressedSize }
        guard bytes.count >= expectedEnd else {
            throw CheckpointError("\(source): truncated (\(bytes.count) bytes, expected \(expectedEnd))")
        }
        var tensors: [SafeTensors.Entry] = []
        var ranks = [[SafeTensors.Entry]](repeating: [], count: header.worldSize)
        for s in header.sections {
            let slice = bytes[(start + s.offset)..<(start + s.offset + s.compressedSize)]
            let raw = try Zstd.decompress(slice, expectedSize: s.rawSize, source: "\(source) section \(s.name)")
            let hash = raw.withUnsafeBytes { fnv1a($0) }
            guard String(hash, radix: 16) == s.fnv1a else { throw CheckpointError("\(source): section \(s.name) fails its hash") }
            let entries = try SafeTensors.decode(Data(raw), source: "\(source) section \(s.name)")
            let ordered = entries.keys.sorted().map { entries[$0]! }
            if s.name == CheckpointNames.sharedSection { tensors = ordered }
            else if let r = CheckpointNames.rank(ofSection: s.name), r < ranks.count { ranks[r] = ordered }
        }
        return CheckpointState(header: header, tensors: tensors, ranks: ranks)
    }
}
