import Foundation

/// The folder rules of an image-folder split, beyond torchvision's sorted walk:
/// * hidden folders (`.git`, any name starting with '.') and macOS's `__MACOSX` are not classes;
/// * a folder with no image is not a class (torchvision's `make_dataset` refuses such a class with
///   "Found no valid file for the classes …"; here it is skipped and named in the split's warning);
/// * links are followed once: each real folder is walked at most once, and a link to a folder above a class
///   folder (back up the tree: a loop) or into another class's folder is not followed, so no image is
///   listed twice or under another class (`os.walk(followlinks=True)` would loop or mislabel);
/// * two class folders whose names differ only in Unicode normalisation (NFC `café` and NFD `café`, as a
///   copy from macOS can leave them) are refused: they are one name to a reader and two to the file system.
struct FolderWalk {
    /// Real paths of the split folder and of every class folder.
    private let splitRoot: String?
    private let classRoots: [(name: String, real: String)]
    private var visited = Set<String>()
    /// Links (or folders met a second time) not followed, as "class/sub (why)".
    private(set) var notFollowed: [String] = []

    static func isHidden(_ name: String) -> Bool { name.hasPrefix(".") || name == "__MACOSX" }

    init(split: String, classFolders: [String]) {
        let root = realPath(split)
        splitRoot = root
        // A class folder that leads back up the tree is not a class (`images` says so): not a root either.
        classRoots = classFolders.compactMap { name in
            realPath(ImageFolder.join(split, name)).flatMap { r in root.map { FolderWalk.within($0, r) } == true ? nil : (name, r) }
        }
    }

    /// Image files under the class folder `dir` (its name `className`), in the order of torchvision's
    /// `sorted(os.walk(dir))` with sorted names; nil when `dir` is a link back up the tree (not a class).
    mutating func images(_ dir: String, className: String, shouldStop: (@Sendable () -> Bool)? = nil) throws -> [String]? {
        if let r = realPath(dir) {
            if let s = splitRoot, FolderWalk.within(s, r) {
                notFollowed.append("\(className) (back up the tree to \(r))")
                return nil
            }
            visited.insert(r)
        }
        var groups: [(String, [String])] = []
        var pending = [dir]
        while let d = pending.popLast() {
            if shouldStop?() == true { throw DataInterrupted() }
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: d) }
            catch { throw DataError("imagefolder: cannot list \(d): \(error.localizedDescription)") }
            var files: [String] = []
            for name in names.sorted() where !FolderWalk.isHidden(name) {
                let ext = (name as NSString).pathExtension.lowercased()
                let path = ImageFolder.join(d, name)
                // Names with an image extension are taken as files without a stat (millions of them).
                if ImageFolder.readable.contains(ext) { files.append(path); continue }
                if ImageFolder.unsupported.contains(ext) {
                    throw DataError("imagefolder: \(path): .\(ext) images are not supported (JPEG and PNG are); convert or remove it")
                }
                if ImageFolder.isDirectory(path), follow(path, className: className, from: dir) { pending.append(path) }
            }
            groups.append((d, files))
        }
        return groups.sorted { $0.0 < $1.0 }.flatMap { $0.1 }
    }

    /// Whether to walk the sub-folder `path` of class `className`; notes why not.
    private mutating func follow(_ path: String, className: String, from classDir: String) -> Bool {
        guard let real = realPath(path) else { return false }
        let shown = path.hasPrefix(classDir + "/") ? className + "/" + path.dropFirst(classDir.count + 1) : path
        var why: String?
        if let c = classRoots.first(where: { $0.name != className && FolderWalk.within(real, $0.real) }) {
            why = "into class \(c.name)"
        } else if splitRoot.map({ FolderWalk.within($0, real) }) == true
                    || classRoots.contains(where: { FolderWalk.within($0.real, real) }) {
            why = "back up the tree to \(real)"
        } else if !visited.insert(real).inserted {
            why = "\(real) already listed"
        }
        guard let why else { return true }
        notFollowed.append("\(shown) (\(why))")
        return false
    }

    /// Whether path `a` is `b` or inside it (both real paths).
    static func within(_ a: String, _ b: String) -> Bool { a == b || a.hasPrefix(b.hasSuffix("/") ? b : b + "/") }

    /// One line on what a split's listing left out, or nil when nothing was.
    static func note(_ directory: String, hidden: [String], empty: [String], notFollowed: [String]) -> String? {
        func few(_ names: [String]) -> String {
            names.prefix(5).joined(separator: ", ") + (names.count > 5 ? ", … (\(names.count - 5) more)" : "")
        }
        var parts: [String] = []
        if !hidden.isEmpty { parts.append("\(hidden.count) hidden folder(s): \(few(hidden))") }
        if !empty.isEmpty { parts.append("\(empty.count) folder(s) with no .jpg, .jpeg or .png image (not classes): \(few(empty))") }
        if !notFollowed.isEmpty { parts.append("\(notFollowed.count) link(s), not followed: \(few(notFollowed))") }
        return parts.isEmpty ? nil : "imagefolder: \(directory): skipped " + parts.joined(separator: "; ")
    }

    /// Refuses two folder names that are equal as Swift strings (canonical equivalence) but differ in bytes.
    static func refuseNormalisationTwins(_ names: [String], in directory: String) throws {
        var first: [String: String] = [:]
        for name in names {
            if let other = first[name], Array(other.utf8) != Array(name.utf8) {
                throw DataError("imagefolder: \(directory) has class folders \"\(other)\" (\(form(other))) and \"\(name)\" (\(form(name))) "
                                + "whose names differ only in Unicode normalisation: rename one, or move its images into the other")
            }
            first[name] = first[name] ?? name
        }
    }

    private static func form(_ name: String) -> String {
        let bytes = Array(name.utf8), count = "\(bytes.count) bytes"
        if bytes == Array(name.precomposedStringWithCanonicalMapping.utf8) { return "NFC, " + count }
        if bytes == Array(name.decomposedStringWithCanonicalMapping.utf8) { return "NFD, " + count }
        return "mixed, " + count
    }
}

/// The canonical absolute path of `path` with every link resolved, or nil when it cannot be resolved.
func realPath(_ path: String) -> String? {
    guard let p = Glibc.realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}
