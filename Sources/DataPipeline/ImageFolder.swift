import Foundation
import Kernels

/// `--data imagefolder:PATH`: torchvision's ImageFolder layout, `PATH/train/<class>/…` and
/// `PATH/val/<class>/…` (or `PATH/test/`, or `--val-split NAME`). The class index is the position of the
/// folder name in sorted order; files are listed as torchvision does (sorted walk, sub-folders included).
/// `.jpg`, `.jpeg` and `.png` files are read (by content, so a PNG named .JPEG works); other image
/// formats are an error at open naming a file; other files are ignored. Hidden folders, folders with no
/// image and links back up the tree are not classes (`FolderWalk` has the rules).
public enum ImageFolder {
    static let readable: Set<String> = ["jpg", "jpeg", "png"]
    static let unsupported: Set<String> = ["bmp", "gif", "webp", "tif", "tiff", "ppm", "pgm", "pbm", "pnm"]

    /// One split's listing.
    public struct Listing: Sendable {
        public let directory: String
        public let classes: [String]
        public let paths: [String]
        public let labels: [Int32]
        /// One line on the folders and links left out (`FolderWalk.note`), nil when none were.
        public let skipped: String?
    }

    /// The train and evaluation folders of `root`: `val`, else `test`, unless `valSplit` names one.
    public static func splitDirectories(_ root: String, valSplit: String?) throws -> (train: String, val: String) {
        guard isDirectory(root) else { throw DataError("imagefolder: data folder \(root) does not exist") }
        let train = join(root, "train")
        guard isDirectory(train) else {
            throw DataError("imagefolder: \(train) does not exist (expected \(root)/train/<class>/<image>)")
        }
        return (train, try evaluationDirectory(root, valSplit: valSplit))
    }

    /// Lists `directory/<class>/…`. With `classes` given (the train split's), folders must be among them.
    /// Hidden folders, folders with no image and links that would list an image twice are left out
    /// (`Listing.skipped` says which; see `FolderWalk`).
    public static func list(_ directory: String, classes given: [String]? = nil,
                            shouldStop: (@Sendable () -> Bool)? = nil) throws -> Listing {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) }
        catch { throw DataError("imagefolder: cannot list \(directory): \(error.localizedDescription)") }
        var hidden: [String] = [], candidates: [String] = [], empty: [String] = []
        for name in names.sorted() where isDirectory(join(directory, name)) {
            if FolderWalk.isHidden(name) { hidden.append(name) } else { candidates.append(name) }
        }
        try FolderWalk.refuseNormalisationTwins(candidates, in: directory)
        var walker = FolderWalk(split: directory, classFolders: candidates)
        var found: [(folder: String, files: [String])] = []
        for folder in candidates {
            if shouldStop?() == true { throw DataInterrupted() }
            guard let files = try walker.images(join(directory, folder), className: folder, shouldStop: shouldStop) else { continue }
            if files.isEmpty { empty.append(folder) } else { found.append((folder, files)) }
        }
        let classes = given ?? found.map(\.folder)
        guard !classes.isEmpty else {
            throw DataError("imagefolder: \(directory) has no class folder with a .jpg, .jpeg or .png image")
        }
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        var paths: [String] = [], labels: [Int32] = []
        for (folder, files) in found {
            guard let label = index[folder] else {
                throw DataError("imagefolder: \(join(directory, folder)) is not one of the \(classes.count) training classes "
                                + "(the training split's folders with at least one image)")
            }
            paths += files
            labels += [Int32](repeating: Int32(label), count: files.count)
        }
        guard !paths.isEmpty else { throw DataError("imagefolder: \(directory) has no .jpg, .jpeg or .png images") }
        return Listing(directory: directory, classes: classes, paths: paths, labels: labels,
                       skipped: FolderWalk.note(directory, hidden: hidden, empty: empty, notFollowed: walker.notFollowed))
    }

    /// Lists both splits of `root`, printing each split's one-line note on what it skipped.
    public static func listSplits(_ root: String, valSplit: String?,
                                  shouldStop: (@Sendable () -> Bool)? = nil) throws -> (train: Listing, val: Listing) {
        let dirs = try splitDirectories(root, valSplit: valSplit)
        let train = try list(dirs.train, shouldStop: shouldStop)
        let val = try list(dirs.val, classes: train.classes, shouldStop: shouldStop)
        for note in [train.skipped, val.skipped].compactMap({ $0 }) { Diagnostics.warning(note) }
        return (train, val)
    }

    /// Opens both splits as `ImageDataset`s.
    public static func open(_ root: String, options: DataOptions) throws -> (train: ImageDataset, val: ImageDataset) {
        let (train, val) = try listSplits(root, valSplit: options.valSplit, shouldStop: options.shouldStop)
        let trainSource = FolderSource(train), valSource = FolderSource(val)
        let size = options.imageSize ?? ImageDataset.defaultSize(trainSource)
        let t = ImageTransform(size: size, augPlus: options.augPlus, dctScaling: options.dctScaling)
        return (ImageDataset(name: "imagefolder:\(train.directory)", source: trainSource, classNames: train.classes, transform: t),
                ImageDataset(name: "imagefolder:\(val.directory)", source: valSource, classNames: train.classes, transform: t))
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }

    static func join(_ a: String, _ b: String) -> String { (a as NSString).appendingPathComponent(b) }
}

/// The files of one image-folder split.
final class FolderSource: ImageSource, @unchecked Sendable {
    let listing: ImageFolder.Listing
    init(_ listing: ImageFolder.Listing) { self.listing = listing }
    var count: Int { listing.paths.count }
    func label(_ index: Int) -> Int { Int(listing.labels[index]) }
    func describe(_ index: Int) -> String { listing.paths[index] }
    func key(_ index: Int) -> String {
        let p = listing.paths[index], d = listing.directory
        return p.hasPrefix(d + "/") ? String(p.dropFirst(d.count + 1)) : p
    }
    func fetch(_ index: Int, _ ws: DecodeWorkspace) throws -> SourceImage {
        let n = try readFile(listing.paths[index], into: ws.file)
        return .encoded(UnsafeRawBufferPointer(start: ws.file.pointer, count: n))
    }
}

/// Reads a whole file into `buf` with one open, fstat and read (files are small; no Foundation objects).
func readFile(_ path: String, into buf: Scratch<UInt8>) throws -> Int {
    let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw BadImage(path, "cannot open: \(String(cString: strerror(errno)))") }
    defer { Glibc.close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw BadImage(path, "cannot stat: \(String(cString: strerror(errno)))") }
    let size = Int(st.st_size)
    let p = buf.reserve(size + 1)
    var done = 0
    while done < size {
        let r = Glibc.read(fd, p + done, size - done)
        if r < 0 && errno == EINTR { continue }
        guard r > 0 else { throw BadImage(path, r == 0 ? "file shrank while reading" : "read error: \(String(cString: strerror(errno)))") }
        done += r
    }
    guard size > 0 else { throw BadImage(path, "empty file") }
    return size
}
