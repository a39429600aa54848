import CZlib
import Foundation
import Kernels

/// Fashion-MNIST from its IDX files (gzip'd or plain): 28×28 grey images of 10 clothing classes.
/// Training samples get the CIFAR-style augmentation: random crop with 4 px of zero padding, then a
/// horizontal flip with probability ½. Pixels are normalised with the data set's mean and std.
public final class FashionMNIST: Dataset, @unchecked Sendable {
    public enum Split: String, Sendable { case train, test }
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    public static let classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    public let name: String
    public let count: Int
    public var numClasses: Int { 10 }
    public var classNames: [String] { FashionMNIST.classes }
    public let sampleShape: (height: Int, width: Int, channels: Int)
    private let pixels: [UInt8]
    private let labels: [UInt8]
    public let normalization = Normalization.fashionMNIST

    public init(directory: String, split: Split) throws {
        let prefix = split == .train ? "train" : "t10k"
        let imageFile = try IDXFile.locate(directory, "\(prefix)-images-idx3-ubyte")
        let labelFile = try IDXFile.locate(directory, "\(prefix)-labels-idx1-ubyte")
        let images = try IDXFile.read(imageFile)
        let labels = try IDXFile.read(labelFile)
        guard images.dims.count == 3, labels.dims.count == 1 else {
            throw DataError("\(imageFile): expected a 3-D image file and a 1-D label file")
        }
        guard images.dims[0] == labels.dims[0] else {
            throw DataError("\(imageFile) has \(images.dims[0]) images but \(labelFile) has \(labels.dims[0]) labels")
        }
        if let bad = labels.bytes.first(where: { $0 >= 10 }) {
            throw DataError("\(labelFile): label \(bad) is out of range 0..<10")
        }
        name = "fashion-mnist/\(split.rawValue)"
        count = images.dims[0]
        sampleShape = (images.dims[1], images.dims[2], 1)
        pixels = images.bytes
        self.labels = labels.bytes
    }

    public func label(_ index: Int) -> Int { Int(labels[index]) }

    public func load(_ index: Int, augment: Bool, rng: inout RandomStream, into out: UnsafeMutablePointer<Float>) throws {
        let h = sampleShape.height, w = sampleShape.width
        let scale = 1 / (255 * normalization.std[0]), shift = -normalization.mean[0] / normalization.std[0]
        pixels.withUnsafeBufferPointer { px in
            let src = px.baseAddress! + index * h * w
            if augment {
                let pad = 4
                let oy = rng.int(below: 2 * pad + 1) - pad, ox = rng.int(below: 2 * pad + 1) - pad
                let flip = rng.bernoulli(0.5)
                for y in 0..<h {
                    let sy = y + oy
                    for x in 0..<w {
                        let sx = (flip ? w - 1 - x : x) + ox
                        let v: UInt8 = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? src[sy * w + sx] : 0
                        out[y * w + x] = Float(v) * scale + shift
                    }
                }
            } else {
                for i in 0..<(h * w) { out[i] = Float(src[i]) * scale + shift }
            }
        }
    }
}

/// The IDX format of (Fashion-)MNIST: big-endian magic 0x0000_08_NN (unsigned bytes, NN dimensions),
/// then NN big-endian UInt32 sizes, then the bytes. Files may be gzip-compressed.
enum IDXFile {
    static func locate(_ directory: String, _ base: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw DataError("data folder \(directory) does not exist (install Debian's dataset-fashion-mnist: launch/setup.sh)")
        }
        for candidate in [base + ".gz", base] {
            let path = (directory as NSString).appendingPathComponent(candidate)
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        throw DataError("missing data file \(directory)/\(base).gz")
    }

    static func read(_ path: String) throws -> (dims: [Int], bytes: [UInt8]) {
        let raw = try gunzip(path)
        guard raw.count >= 4, raw[0] == 0, raw[1] == 0, raw[2] == 0x08 else {
            throw DataError("\(path): not an IDX file of unsigned bytes (bad magic)")
        }
        let ndim = Int(raw[3])
        guard raw.count >= 4 + 4 * ndim else { throw DataError("\(path): truncated header") }
        var dims: [Int] = []
        for d in 0..<ndim {
            let o = 4 + 4 * d
            dims.append(Int(raw[o]) << 24 | Int(raw[o + 1]) << 16 | Int(raw[o + 2]) << 8 | Int(raw[o + 3]))
        }
        let start = 4 + 4 * ndim
        let expected = dims.reduce(1, *)
        guard raw.count - start == expected else {
            throw DataError("\(path): expected \(expected) data bytes for shape \(dims), found \(raw.count - start) (truncated or corrupt)")
        }
        return (dims, Array(raw[start...]))
    }

    /// Reads a gzip file (or a plain one: zlib passes it through) whole.
    static func gunzip(_ path: String) throws -> [UInt8] {
        guard let gz = gzopen(path, "rb") else { throw DataError("cannot open \(path)") }
        defer { gzclose(gz) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32($0.count)) }
            if n < 0 {
                var errnum: Int32 = 0
                let msg = String(cString: gzerror(gz, &errnum))
                throw DataError("\(path): \(msg) (corrupt gzip data)")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<Int(n)])
        }
        return out
    }
}
