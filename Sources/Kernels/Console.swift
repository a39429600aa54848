import Foundation

/// What the process prints, and its copy in the run's log. Writes go straight to the file descriptor and
/// ignore failures: a full file system under stdout (a SLURM log over quota), a closed pipe or /dev/full
/// must never end a run (Foundation's `FileHandle.write(_:)` traps on them). Every line (stdout or stderr)
/// is also handed to the recorder that `record(to:)` attached (rank 0's train.log), so the log holds what
/// the terminal showed; lines printed before it is attached wait for it once `startRecording()` was called.
public enum Console {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var recorder: ((Date, String) -> Void)?
    nonisolated(unsafe) private static var pending: [(Date, String)]?

    /// A line to stdout, recorded.
    public static func line(_ s: String) { emit(s, fd: STDOUT_FILENO) }

    /// A line to stderr, recorded.
    public static func errorLine(_ s: String) { emit(s, fd: STDERR_FILENO) }

    /// Keeps the lines printed from now on until a recorder is attached (the run log opens after the data
    /// is listed, and the start line and bad-image warnings come before).
    public static func startRecording() {
        lock.withLock { if recorder == nil && pending == nil { pending = [] } }
    }

    /// Hands every line printed from now on, and those kept since `startRecording()`, to `sink`.
    public static func record(to sink: @escaping (Date, String) -> Void) {
        let kept: [(Date, String)] = lock.withLock {
            recorder = sink
            defer { pending = nil }
            return pending ?? []
        }
        for (date, line) in kept { sink(date, line) }
    }

    private static func emit(_ s: String, fd: Int32) {
        write(s + "\n", fd: fd)
        let now = Date()
        let sink: ((Date, String) -> Void)? = lock.withLock {
            if recorder == nil { pending?.append((now, s)) }
            return recorder
        }
        sink?(now, s)
    }

    /// write(2) until done; an error (ENOSPC, EPIPE, EBADF) drops the rest of the text.
    public static func write(_ s: String, fd: Int32) {
        let bytes = Array(s.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            off += n
        }
    }
}
