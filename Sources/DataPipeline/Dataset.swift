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
    /// The mean/std its loader normalises with (to draw samples back as pixels).
    var normalization: Normalization { get }
    func label(_ index: Int) -> Int
    /// What names sample `index` within its split (an image folder's relative path), for the data
    /// fingerprint; "" where the position alone names it (fixed files such as CIFAR's or Fashion-MNIST's).
    func sampleKey(_ index: Int) -> String
    func load(_ index: Int, augment: Bool, rng: inout RandomStream, into out: UnsafeMutablePointer<Float>) throws
}

extension Dataset {
    public func sampleKey(_ index: Int) -> String { "" }
}

/// Errors that name the file or flag at fault, printed as one line by the command.
public struct DataError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A train split and an evaluation split of one data set, and the log that counts their bad images
/// (pass it to both loaders; the trainer writes its count as `bad_images`).
public struct DataSplits: Sendable {
    public let train: Dataset
    public let val: Dataset
    public let badImages: BadImageLog
    public init(train: Dataset, val: Dataset, badImages: BadImageLog = BadImageLog()) {
        self.train = train; self.val = val; self.badImages = badImages
    }
}

/// Per-channel normalisation constants (of pixel values in [0, 1]).
public struct Normalization: Sendable {
    public let mean: [Float], std: [Float]
    public init(mean: [Float], std: [Float]) { self.mean = mean; self.std = std }
    public static let fashionMNIST = Normalization(mean: [0.2860], std: [0.3530])
    public static let cifar = Normalization(mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.2010])
    public static let imageNet = Normalization(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
}

/// Resolves a `--data` value:
/// * `fashion-mnist` (the default) reads the IDX files that Debian's dataset-fashion-mnist package
///   installs; `fashion-mnist:DIR` reads them from DIR;
/// * `imagefolder:PATH` — `PATH/train/<class>/*` and `PATH/val` (or `test`, or `--val-split`), see `ImageFolder`;
/// * `cifar10-bin:PATH`, `cifar100-bin:PATH` — the official binary files, see `CIFARBinary`;
/// * `shards:DIR` — the output of `rmtrain pack`, see `ShardSet`.
public func openData(_ spec: String, options: DataOptions = DataOptions()) throws -> DataSplits {
    let (kind, path) = splitSpec(spec)
    if let size = options.imageSize, !DataOptions.imageSizes.contains(size) {
        throw DataError("--image-size must be between \(DataOptions.imageSizes.lowerBound) and \(DataOptions.imageSizes.upperBound), got \(size)")
    }
    func need(_ path: String?) throws -> String {
        guard let path, !path.isEmpty else { throw DataError("--data \(kind) needs a path: \(kind):PATH") }
        return path
    }
    let log = BadImageLog()
    switch kind {
    case "fashion-mnist":
        if let size = options.imageSize, size != 28 {
            throw DataError("--image-size \(size): fashion-mnist images are 28×28 (the flag applies to image folders, CIFAR and shards)")
        }
        let dir = path ?? FashionMNIST.defaultDirectory
        return DataSplits(train: try FashionMNIST(directory: dir, split: .train),
                          val: try FashionMNIST(directory: dir, split: .test), badImages: log)
    case "imagefolder":
        let (train, val) = try ImageFolder.open(try need(path), options: options)
        return DataSplits(train: train, val: val, badImages: log)
    case "cifar10-bin", "cifar100-bin":
        let (train, val) = try CIFARBinary.open(try need(path), variant: kind == "cifar10-bin" ? .cifar10 : .cifar100,
                                                options: options)
        return DataSplits(train: train, val: val, badImages: log)
    case "shards":
        let (train, val) = try ShardSet.open(try need(path), options: options)
        return DataSplits(train: train, val: val, badImages: log)
    default:
        throw DataError("--data: unknown data set '\(kind)' (known: fashion-mnist, fashion-mnist:DIR, imagefolder:PATH, "
                        + "cifar10-bin:PATH, cifar100-bin:PATH, shards:DIR)")
    }
}

func splitSpec(_ spec: String) -> (String, String?) {
    guard let colon = spec.firstIndex(of: ":") else { return (spec, nil) }
    return (String(spec[..<colon]), String(spec[spec.index(after: colon)...]))
}

/// The first `count` samples of another data set (tests of the loader).
public final class PrefixDataset: SubsetDataset, @unchecked Sendable {
    public init(_ base: Dataset, count: Int) {
        super.init(base, indices: Array(0..<min(count, base.count)), name: base.name + "[:\(min(count, base.count))]")
    }
}

/// Some samples of another data set, by index.
public class SubsetDataset: Dataset, @unchecked Sendable {
    public let base: Dataset
    public let indices: [Int]
    public let name: String
    public init(_ base: Dataset, indices: [Int], name: String) {
        self.base = base
        self.indices = indices
        self.name = name
    }
    public var count: Int { indices.count }
    public var numClasses: Int { base.numClasses }
    public var classNames: [String] { base.classNames }
    public var sampleShape: (height: Int, width: Int, channels: Int) { base.sampleShape }
    public var normalization: Normalization { base.normalization }
    public func label(_ index: Int) -> Int { base.label(indices[index]) }
    public func sampleKey(_ index: Int) -> String { base.sampleKey(indices[index]) }
    public func load(_ index: Int, augment: Bool, rng: inout RandomStream, into out: UnsafeMutablePointer<Float>) throws {
        try base.load(indices[index], augment: augment, rng: &rng, into: out)
    }

    /// `--train-limit N` / `--val-limit N`: N samples that represent the data set, whatever its order
    /// (an image folder lists class by class, so the first N would hold one or two classes). Each class
    /// gets ⌊N/K⌋ samples, or all it has if fewer; the remaining places go one each to classes that still
    /// have samples, in a random order; within a class the samples are a random choice. The draw uses a
    /// fixed stream (not `--seed`), so runs with different seeds train on the same subset. Indices stay in
    /// data-set order. Returns the data set itself when N ≥ its size.
    public static func classBalanced(_ base: Dataset, count n: Int) -> Dataset {
        guard n < base.count else { return base }
        var byClass = [[Int]](repeating: [], count: max(base.numClasses, 1))
        for i in 0..<base.count { byClass[min(max(base.label(i), 0), byClass.count - 1)].append(i) }
        var rng = RandomStream(seed: RandomStreams.subsetSeed, stream: UInt64(base.count), UInt64(n))
        for k in byClass.indices { shuffle(&byClass[k], &rng) }
        var take = byClass.map { min($0.count, n / byClass.count) }
        var left = n - take.reduce(0, +)
        var order = Array(byClass.indices)
        while left > 0 {
            shuffle(&order, &rng)
            var progressed = false
            for k in order where left > 0 && take[k] < byClass[k].count { take[k] += 1; left -= 1; progressed = true }
            if !progressed { break }
        }
        let chosen = byClass.indices.flatMap { byClass[$0].prefix(take[$0]) }.sorted()
        let per = take.min() == take.max() ? "\(take[0]) per class" : "\(take.min()!)–\(take.max()!) per class"
        return SubsetDataset(base, indices: chosen,
                             name: base.name + " (class-balanced subset of \(chosen.count): \(per), fixed draw)")
    }

    private static func shuffle(_ a: inout [Int], _ rng: inout RandomStream) {
        if a.count < 2 { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, rng.int(below: i + 1)) }
    }
}
