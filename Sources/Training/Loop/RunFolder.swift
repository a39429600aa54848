import Checkpoint
import Foundation
import Kernels

/// One folder holds one run. Rank 0 locks RUN_DIR/rmtrain.lock (flock(2), held until the process ends, so a
/// killed run frees it) and writes its pid and host there; a second run into the folder is refused naming
/// them. A new run (no --resume) into a folder where a run already trained is refused too: its rows would
/// follow the other run's in metrics.jsonl and its checkpoints mix with the other's under --keep.
public final class RunFolder {
    public static let lockName = "rmtrain.lock"
    public let directory: String
    private let fd: Int32
    /// train.log, open from the claim on: a preemption while the data is listed is logged there too.
    private var log: RunLog?

    private init(directory: String, fd: Int32) { (self.directory, self.fd) = (directory, fd) }
    deinit { close(fd) }

    /// Locks `config.out` (creating it) for this run, then refuses a new run into a folder with history.
    /// Call on rank 0 before the data is read; keep the result alive for the run's life.
    public static func claim(for config: TrainConfig) throws -> RunFolder {
        let dir = config.out
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        catch { throw TrainingError("cannot create run directory \(dir) (--out): \(error.localizedDescription)") }
        let path = (dir as NSString).appendingPathComponent(lockName)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError("cannot create \(path) (--out): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let owner = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw TrainingError("--out \(dir) is in use by another run\(owner.isEmpty ? "" : " (\(owner))"): one folder holds "
                                + "one run; wait for it to end, or give another --out")
        }
        let host = ProcessInfo.processInfo.hostName
        let owner = "pid \(getpid()) on \(host), since \(ISO8601DateFormatter().string(from: Date()))\n"
        _ = ftruncate(fd, 0)
        Console.write(owner, fd: fd)
        let folder = RunFolder(directory: dir, fd: fd)
        if config.resume == nil || config.resumeWeightsOnly {
            let found = history(in: dir)
            if !found.isEmpty {
                throw TrainingError("--out \(dir) already holds a run (\(found.joined(separator: ", "))): continue it with "
                                    + "--resume auto, or give a fresh --out for a new run")
            }
        }
        folder.log = RunLog(path: (dir as NSString).appendingPathComponent("train.log"))
        return folder
    }

    /// What in `directory` shows that a run trained there: metrics rows, checkpoints (also those moved aside
    /// as corrupt), final weights. A folder of a run stopped before its first step (config.yaml, train.log)
    /// has none.
    public static func history(in directory: String) -> [String] {
        let names = Set((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
        var found: [String] = []
        let metrics = (directory as NSString).appendingPathComponent("metrics.jsonl")
        if let text = try? String(contentsOfFile: metrics, encoding: .utf8) {
            let rows = text.split(separator: "\n").filter { $0.contains("\"epoch\"") }.count
            if rows > 0 { found.append("metrics.jsonl with \(rows) epoch row\(rows == 1 ? "" : "s")") }
        }
        let steps = names.filter { $0.hasPrefix("ckpt-") && $0.hasSuffix("." + CheckpointStore.fileExtension) }.sorted()
        if let newest = steps.last { found.append(steps.count == 1 ? newest : "\(steps.count) checkpoints up to \(newest)") }
        found += names.filter { $0.hasSuffix(CheckpointStore.corruptSuffix) }.sorted()
        for name in ["best.\(CheckpointStore.fileExtension)", "final.safetensors"] where names.contains(name) { found.append(name) }
        return found
    }
}
