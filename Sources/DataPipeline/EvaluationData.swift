import Foundation
import Kernels

/// The evaluation split of `--data` for a trained model (`rmtrain eval`): its labels are the model's class
/// indices, matched by class name, so a folder that holds the model's classes in another order, or only some
/// of them, evaluates correctly; a class the model does not know is refused with the names on both sides.
/// (torchvision's ImageFolder numbers classes by sorted folder name, so matching by position would silently
/// score 0 % on a folder whose names differ; RECURSIVEMIX_SPEC §4 evaluates on the training label set.)
public enum EvaluationData {
    /// `classNames`: the model's classes in label order. `options.imageSize` should be the model's.
    /// Image folders are listed from the evaluation folder alone (`val`, else `test`, or `--val-split`):
    /// the training folder, millions of files on ImageNet, is not needed to name the classes.
    public static func open(_ spec: String, options: DataOptions, classNames: [String]) throws -> (val: Dataset, badImages: BadImageLog) {
        let (kind, path) = splitSpec(spec)
        if kind == "imagefolder", let root = path, !root.isEmpty {
            let dir = try ImageFolder.evaluationDirectory(root, valSplit: options.valSplit)
            // The folder's own classes (hidden, empty and looping folders left out, as train does), then its labels
            // renumbered into the model's classes by name.
            let own = try ImageFolder.list(dir, shouldStop: options.shouldStop)
            if let note = own.skipped { Diagnostics.warning(note) }
            try checkKnown(own.classes, in: "imagefolder:\(dir)", classNames: classNames)
            let index = Dictionary(classNames.enumerated().map { ($1.precomposedStringWithCanonicalMapping, Int32($0)) },
                                   uniquingKeysWith: { a, _ in a })
            let listing = ImageFolder.Listing(directory: own.directory, classes: classNames, paths: own.paths,
                                              labels: own.labels.map { index[own.classes[Int($0)].precomposedStringWithCanonicalMapping]! },
                                              skipped: own.skipped)
            let source = FolderSource(listing)
            let t = ImageTransform(size: options.imageSize ?? ImageDataset.defaultSize(source), augPlus: false,
                                   dctScaling: options.dctScaling)
            return (ImageDataset(name: "imagefolder:\(dir)", source: source, classNames: classNames, transform: t), BadImageLog())
        }
        let splits = try openData(spec, options: options)
        let val = splits.val.classNames == classNames ? splits.val : try ClassMappedDataset(splits.val, classNames: classNames)
        return (val, splits.badImages)
    }

    /// Refuses names not among `classNames`, in one line naming them and the model's classes.
    static func checkKnown(_ names: [String], in what: String, classNames: [String]) throws {
        // One name in either Unicode normalisation (FolderWalk refuses NFC/NFD twins within a split).
        let known = Set(classNames.map(\.precomposedStringWithCanonicalMapping))
        let unknown = names.filter { !known.contains($0.precomposedStringWithCanonicalMapping) }
        guard !unknown.isEmpty else { return }
        throw DataError("\(what) has class\(unknown.count == 1 ? "" : "es") \(shown(unknown)) that the checkpoint does not know "
                        + "(its \(classNames.count) classes: \(shown(classNames))); classes are matched by name")
    }

    /// At most 8 names, then how many more.
    static func shown(_ names: [String]) -> String {
        names.count <= 8 ? names.joined(separator: ", ")
            : names.prefix(8).joined(separator: ", ") + ", … (\(names.count - 8) more)"
    }
}

extension ImageFolder {
    /// The evaluation folder under `root`: `valSplit`, else `val`, else `test` (no `train` folder needed).
    static func evaluationDirectory(_ root: String, valSplit: String?) throws -> String {
        guard isDirectory(root) else { throw DataError("imagefolder: data folder \(root) does not exist") }
        if let valSplit {
            let v = join(root, valSplit)
            guard isDirectory(v) else { throw DataError("imagefolder: \(v) does not exist (--val-split \(valSplit))") }
            return v
        }
        for name in ["val", "test"] where isDirectory(join(root, name)) { return join(root, name) }
        throw DataError("imagefolder: neither \(root)/val nor \(root)/test exists (name the evaluation folder with --val-split)")
    }
}

/// Another data set's samples with their labels renumbered into `classNames` by name (a model's classes).
public final class ClassMappedDataset: Dataset, @unchecked Sendable {
    public let base: Dataset
    public let classNames: [String]
    private let map: [Int]

    /// Throws when one of `base`'s classes is not among `classNames`.
    public init(_ base: Dataset, classNames: [String]) throws {
        try EvaluationData.checkKnown(base.classNames, in: base.name, classNames: classNames)
        let index = Dictionary(classNames.enumerated().map { ($1.precomposedStringWithCanonicalMapping, $0) },
                               uniquingKeysWith: { a, _ in a })
        self.base = base
        self.classNames = classNames
        map = base.classNames.map { index[$0.precomposedStringWithCanonicalMapping]! }
    }

    public var name: String { base.name }
    public var count: Int { base.count }
    public var numClasses: Int { classNames.count }
    public var sampleShape: (height: Int, width: Int, channels: Int) { base.sampleShape }
    public var normalization: Normalization { base.normalization }
    public func label(_ index: Int) -> Int { map[base.label(index)] }
    public func sampleKey(_ index: Int) -> String { base.sampleKey(index) }
    public func load(_ index: Int, augment: Bool, rng: inout RandomStream, into out: UnsafeMutablePointer<Float>) throws {
        try base.load(index, augment: augment, rng: &rng, into: out)
    }
}

/// The evaluation resize rule of a data set (`ImageTransform.Pipeline`'s name, or `none` for fixed-size data
/// such as Fashion-MNIST), looking through subsets and class mappings.
public func resizeRule(of data: Dataset) -> String {
    if let d = data as? ImageDataset { return d.transform.pipeline.rawValue }
    if let d = data as? SubsetDataset { return resizeRule(of: d.base) }
    if let d = data as? ClassMappedDataset { return resizeRule(of: d.base) }
    return "none"
}
