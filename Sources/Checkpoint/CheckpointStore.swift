import Foundation

/// The checkpoints of a run directory: atomic saves, retention of the last N plus the best, and
/// finding the newest checkpoint that verifies.
public struct CheckpointStore {
    public let directory: String
    public init(directory: String) { self.directory = directory }

    public static let fileExtension = "rmck"

    public func path(step: Int) -> String {
        (directory as NSString).appendingPathComponent(String(format: "ckpt-%09d.%@", step, CheckpointStore.fileExtension))
    }
    public var bestPath: String { (directory as NSString).appendingPathComponent("best.\(CheckpointStore.fileExtension)") }

    /// Writes `bytes` to `path` so that a crash at any moment leaves the old file or the new one, never
    /// half of one: temporary file, fsync, rename, fsync of the directory. Errors name the path.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        catch { throw CheckpointError("cannot create checkpoint directory \(dir): \(error.localizedDescription)") }
        let tmp = path + ".tmp.\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CheckpointError("cannot write checkpoint \(tmp): \(String(cString: strerror(errno)))") }
        var failure: String?
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 { if errno == EINTR { continue }; failure = String(cString: strerror(errno)); return }
                off += n
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        if let failure {
            unlink(tmp)
            throw CheckpointError("cannot write checkpoint \(path): \(failure); the previous checkpoint is intact")
        }
        guard rename(tmp, path) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(tmp)
            throw CheckpointError("cannot rename \(tmp) to \(path): \(e)")
        }
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// Copies the checkpoint at `path` to best.rmck, atomically.
    public func copyAsBest(_ path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw CheckpointError("cannot read checkpoint \(path)") }
        try CheckpointStore.writeAtomically([UInt8](data), to: bestPath)
    }

    /// Checkpoint files by step, newest first.
    public func candidates() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("ckpt-") && $0.hasSuffix("." + CheckpointStore.fileExtension) }
            .sorted(by: >)
            .map { (directory as NSString).appendingPathComponent($0) }
    }

    /// Deletes all but the newest `keep` step checkpoints (the best copy is separate and stays).
    public func prune(keep: Int) {
        for old in candidates().dropFirst(max(keep, 1)) { try? FileManager.default.removeItem(atPath: old) }
    }

    public static func read(_ path: String) throws -> CheckpointState {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError("cannot read checkpoint \(path)")
        }
        return try CheckpointFile.decode([UInt8](data), source: path)
    }

    /// What a checkpoint that does not verify is renamed to by `newestValid(moveAside:)`.
    public static let corruptSuffix = ".corrupt"

    /// The newest checkpoint that verifies; each bad newer one is reported through `warn` and, with
    /// `moveAside`, renamed to NAME.corrupt: left in place it would keep outranking every checkpoint the
    /// resumed run writes (by step in `candidates`), and `prune` would delete those instead.
    public func newestValid(warn: (String) -> Void, moveAside: Bool = false) -> (path: String, state: CheckpointState)? {
        for path in candidates() {
            do { return (path, try CheckpointStore.read(path)) }
            catch {
                var said = "skipping checkpoint \(path): \(error)"
                if moveAside {
                    let aside = path + CheckpointStore.corruptSuffix
                    said += rename(path, aside) == 0 ? "; moved aside as \((aside as NSString).lastPathComponent)"
                                                     : "; could not move it aside (\(String(cString: strerror(errno))))"
                }
                warn(said)
            }
        }
        return nil
    }
}
