import Kernels

/// A labelled image data set that writes one sample at a time as NHWC floats, already augmented and
/// normalised. The augmentation's random numbers come from `rng`, which the loader derives from
/// (seed, epoch, index), so a sample is the same whichever thread loads it.
public protocol Dataset: AnyObject, Sendable {
    var name: String { get }
    var count: Int { get }
    var numClasses: Int { get }
    var classNames: [String] { get }
    /// Shape of one loaded sample: height, width, channels.
    var sampleShape: (height: Int, width: Int, channels: Int) { get }
    func label(_ index: Int) -> Int
    func load(_ index: Int, augment: Bool, rng: inout RandomStream, into out: UnsafeMutablePointer<Float>) throws
}

/// Errors that name the file or flag at fault, printed as one line by the command.
public struct DataError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A train split and an evaluation split of one data set.
public struct DataSplits: Sendable {
    public let train: Dataset
    public let val: Dataset
    public init(train: Dataset, val: Dataset) { self.train = train; self.val = val }
}

/// Per-channel normalisation constants (of pixel values in [0, 1]).
public struct Normalization: Sendable {
    public let mean: [Float], std: [Float]
    public static let fashionMNIST = Normalization(mean: [0.2860], std: [0.3530])
    public static let cifar = Normalization(mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.2010])
    public static let imageNet = Normalization(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
}

/// Resolves a `--data` value. `fashion-mnist` (the default) reads the IDX files that Debian's
/// dataset-fashion-mnist package installs; `fashion-mnist:DIR` reads them from DIR.
public func openData(_ spec: String) throws -> DataSplits {
    let (kind, path) = splitSpec(spec)
    switch kind {
    case "fashion-mnist":
        let dir = path ?? FashionMNIST.defaultDirectory
        return DataSplits(train: try FashionMNIST(directory: dir, split: .train),
                          val: try FashionMNIST(directory: dir, split: .test))
    default:
        throw DataError("--data: unknown data set '\(kind)' (known: fashion-mnist, fashion-mnist:DIR)")
    }
}

func splitSpec(_ spec: String) -> (String, String?) {
    guard let colon = spec.firstIndex(of: ":") else { return (spec, nil) }
    return (String(spec[..<colon]), String(spec[spec.index(after: colon)...]))
}

/// The first `count` samples of another data set (quick runs and tests).
public final class PrefixDataset: Dataset, @unchecked Sendable {
    public let base: Dataset
    public let count: Int
    public init(_ base: Dataset, count: Int) {
        self.base = base
        self.count = min(count, base.count)
    }
    public var name: String { base.name + "[:\(count)]" }
    public var numClasses: Int { base.numClasses }
    public var classNames: [String] { base.classNames }
    public var sampleShape: (height: Int, width: Int, channels: Int) { base.sampleShape }
    public func label(_ index: Int) -> Int { base.label(index) }
    public func load(_ index: Int, augment: Bool, rng: inout RandomStream, into out: UnsafeMutablePointer<Float>) throws {
        try base.load(index, augment: augment, rng: &rng, into: out)
    }
}
