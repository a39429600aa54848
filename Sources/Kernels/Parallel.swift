import CConv
import Dispatch
import Foundation

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
        if useOpenMP {
            let status = withoutActuallyEscaping(body) { escapable -> Int32 in
                var task = escapable
                return withUnsafeMutablePointer(to: &task) { p in
                    rm_parallel_for(Int32(tasks), Int32(min(threads, tasks)), { ctx, k in
                        ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(k))
                    }, p)
                }
            }
            if status == 0 { return }
        }
        withoutActuallyEscaping(body) { escapable in
            let box = UncheckedSendable(escapable)
            DispatchQueue.concurrentPerform(iterations: tasks) { box.value($0) }
        }
    }

    /// Our loops run on oneDNN's OpenMP threads (`rm_parallel_for`): one team per rank, where a second
    /// pool (Dispatch) competed with OpenMP's spinning workers. `RMTRAIN_PARALLEL=dispatch` uses Dispatch.
    nonisolated(unsafe) static var useOpenMP = ProcessInfo.processInfo.environment["RMTRAIN_PARALLEL"] != "dispatch"

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
