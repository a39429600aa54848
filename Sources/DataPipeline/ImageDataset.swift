import Foundation
import Kernels

/// The bytes of one sample as its source has them: an encoded file (JPEG or PNG) or decoded RGB pixels.
/// Pointers stay valid until the workspace is used again.
enum SourceImage {
    case encoded(UnsafeRawBufferPointer)
    case pixels(UnsafePointer<UInt8>, width: Int, height: Int)
}

/// Where a data set's samples come from: files of an image folder, CIFAR's binary batches, packed shards.
/// `fetch` may run on any thread; it throws `BadImage` for a sample it cannot read.
protocol ImageSource: AnyObject, Sendable {
    var count: Int { get }
    func label(_ index: Int) -> Int
    /// The file (or shard record) behind a sample, for messages.
    func describe(_ index: Int) -> String
    func fetch(_ index: Int, _ ws: DecodeWorkspace) throws -> SourceImage
    /// The sample's name within the split, for the data fingerprint.
    func key(_ index: Int) -> String
}

extension ImageSource {
    func key(_ index: Int) -> String { "" }
}

/// Per-thread decoding state: a TurboJPEG handle and the buffers of every stage, grown as needed and
/// reused, so a loader thread allocates nothing per sample in the steady state.
final class DecodeWorkspace {
    let jpeg = JPEGCodec()
    let file = Scratch<UInt8>(1 << 16)
    let rgb = Scratch<UInt8>(1 << 16)
    let cmyk = Scratch<UInt8>()
    let tables = (AxisTable(), AxisTable())
    let tmp = Scratch<Float>(1 << 16)
    let base = Scratch<Float>()
}

/// Decodes any `SourceImage` to packed RGB, at a reduced DCT size when the caller needs fewer pixels.
enum ImageDecoder {
    /// `warning`: libjpeg's message when it decoded damaged data as far as it could (see `JPEGCodec.decode`).
    struct Decoded { var pixels: UnsafePointer<UInt8>; var width: Int; var height: Int; var warning: String? = nil }

    /// The full-resolution size of an image, from its header only.
    static func size(_ image: SourceImage, _ ws: DecodeWorkspace) throws -> (width: Int, height: Int) {
        switch image {
        case .pixels(_, let w, let h): return (w, h)
        case .encoded(let bytes):
            if JPEGCodec.isJPEG(bytes) { let h = try ws.jpeg.header(bytes); return (h.width, h.height) }
            if PNGDecoder.isPNG(bytes) { let h = try PNGDecoder.header(bytes); return (h.width, h.height) }
            throw DecodeFailure("not a JPEG or PNG file")
        }
    }

    /// Decodes at the smallest available size that is at least `minimum` (width, height) pixels.
    static func decode(_ image: SourceImage, minimum: (Double, Double)?, _ ws: DecodeWorkspace) throws -> Decoded {
        switch image {
        case .pixels(let p, let w, let h): return Decoded(pixels: p, width: w, height: h)
        case .encoded(let bytes):
            if JPEGCodec.isJPEG(bytes) {
                let h = try ws.jpeg.header(bytes)
                let size = minimum.map { JPEGCodec.scaledSize(h, minWidth: $0.0, minHeight: $0.1) } ?? (h.width, h.height)
                let d = try ws.jpeg.decode(bytes, header: h, size: size, into: ws.rgb, cmykScratch: ws.cmyk)
                return Decoded(pixels: d.pixels, width: size.0, height: size.1, warning: d.warning)
            }
            if PNGDecoder.isPNG(bytes) {
                let h = try PNGDecoder.header(bytes)
                let p = try PNGDecoder.decode(bytes, header: h, into: ws.rgb)
                return Decoded(pixels: p, width: h.width, height: h.height)
            }
            throw DecodeFailure("not a JPEG or PNG file")
        }
    }
}

/// A data set of RGB images from any `ImageSource`, transformed by an `ImageTransform`.
public final class ImageDataset: Dataset, @unchecked Sendable {
    public let name: String
    public let classNames: [String]
    public let transform: ImageTransform
    let source: ImageSource
    private let workspaces = Pool { DecodeWorkspace() }
    /// Images decoded with a libjpeg warning (damaged data, decoded as far as it goes): counted and their
    /// first paths logged as warnings; they are loaded, not bad images.
    public var damagedImages = BadImageLog()

    init(name: String, source: ImageSource, classNames: [String], transform: ImageTransform) {
        self.name = name
        self.source = source
        self.classNames = classNames
        self.transform = transform
    }

    public var count: Int { source.count }
    public var numClasses: Int { classNames.count }
    public var sampleShape: (height: Int, width: Int, channels: Int) { (transform.size, transform.size, 3) }
    public var normalization: Normalization { transform.normalization }
    public func label(_ index: Int) -> Int { source.label(index) }
    /// The file or shard record behind sample `index`.
    public func path(_ index: Int) -> String { source.describe(index) }
    public func sampleKey(_ index: Int) -> String { source.key(index) }

    public func load(_ index: Int, augment: Bool, rng: inout RandomStream, into out: UnsafeMutablePointer<Float>) throws {
        try workspaces.with { ws in
            do {
                let image = try source.fetch(index, ws)
                let (w, h) = try ImageDecoder.size(image, ws)
                let plan = transform.plan(width: w, height: h, augment: augment, rng: &rng)
                let minimum = transform.dctScaling
                    ? plan.minimumDecode(width: w, height: h, pipeline: transform.pipeline, size: transform.size) : nil
                let d = try ImageDecoder.decode(image, minimum: minimum, ws)
                if let warning = d.warning { damagedImages.recordDamaged(BadImage(source.describe(index), warning)) }
                transform.render(plan, pixels: d.pixels, pw: d.width, ph: d.height, width: w, height: h,
                                 into: out, tables: ws.tables, tmp: ws.tmp, base: ws.base)
            } catch let e as DecodeFailure {
                throw BadImage(source.describe(index), e.description)
            }
        }
    }

    /// The full-size RGB decode of sample `index` (tests, packing): bytes, width, height.
    public func decodeRGB(_ index: Int) throws -> (pixels: [UInt8], width: Int, height: Int) {
        try workspaces.with { ws in
            do {
                let d = try ImageDecoder.decode(try source.fetch(index, ws), minimum: nil, ws)
                return (Array(UnsafeBufferPointer(start: d.pixels, count: d.width * d.height * 3)), d.width, d.height)
            } catch let e as DecodeFailure {
                throw BadImage(source.describe(index), e.description)
            }
        }
    }

    /// The default output size of a source: 32 when its first readable image is at most 32×32 (CIFAR-like),
    /// else 224.
    static func defaultSize(_ source: ImageSource) -> Int {
        let ws = DecodeWorkspace()
        for i in 0..<min(source.count, 16) {
            if let image = try? source.fetch(i, ws), let (w, h) = try? ImageDecoder.size(image, ws) {
                return w <= 32 && h <= 32 ? 32 : 224
            }
        }
        return 224
    }
}
