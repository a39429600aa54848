import Dispatch

/// Splits loops that BLAS does not run (im2col, batch norm, elementwise) across the same number of
/// threads that OpenBLAS uses, so a rank never runs more threads than the cores it was given.
public enum Parallel {
    nonisolated(unsafe) public private(set) static var threads = 1

    public static func setThreads(_ n: Int) { threads = max(1, n) }

    /// Runs `body(task)` for task in 0..<tasks, concurrently when more than one thread is configured.
    /// Each task must write disjoint memory; results never depend on the thread count.
    public static func forEach(_ tasks: Int, _ body: (Int) -> Void) {
        if tasks <= 1 || threads <= 1 {
            for i in 0..<tasks { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            let box = UncheckedSendable(escapable)
            DispatchQueue.concurrentPerform(iterations: tasks) { box.value($0) }
        }
    }

    /// Splits `0..<total` into `threads` contiguous ranges (fewer when `total` is small) and runs them.
    public static func ranges(_ total: Int, minPerTask: Int = 4096, _ body: (Range<Int>) -> Void) {
        let tasks = min(threads, max(1, total / max(minPerTask, 1)))
        if tasks <= 1 { body(0..<total); return }
        forEach(tasks) { t in
            let lo = total * t / tasks, hi = total * (t + 1) / tasks
            body(lo..<hi)
        }
    }
}

struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
