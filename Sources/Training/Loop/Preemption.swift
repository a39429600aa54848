import Foundation

/// SIGTERM and SIGUSR1 (what SLURM sends before it kills or requeues a job) only set a flag; the ranks
/// agree on it at the next step boundary, save a checkpoint and exit with `Preemption.exitCode`, which a
/// batch script can test to requeue.
public enum Preemption {
    /// EX_TEMPFAIL: "try again later".
    public static let exitCode: Int32 = 75

    nonisolated(unsafe) private static var flag: sig_atomic_t = 0

    public static func install() {
        signal(SIGTERM) { _ in Preemption.flag = 1 }
        signal(SIGUSR1) { _ in Preemption.flag = 1 }
    }

    public static var requested: Bool { flag != 0 }

    /// For tests: behave as if a signal had arrived.
    public static func request() { flag = 1 }
    public static func reset() { flag = 0 }
}

/// Thrown when the run stopped for preemption after writing its checkpoint.
public struct PreemptedError: Error, CustomStringConvertible {
    /// The checkpoint written; nil when the signal came before the first step (nothing new to save).
    public let checkpoint: String?
    public var step = 0
    public init(checkpoint: String?, step: Int = 0) { self.checkpoint = checkpoint; self.step = step }
    public var description: String {
        if let checkpoint { return "preempted: checkpoint written to \(checkpoint); resume with --resume auto" }
        return step == 0 ? "preempted before the first step: nothing was trained and nothing saved"
                         : "preempted before the first step after resuming at step \(step): nothing new to save; "
                           + "resume with --resume auto"
    }
}
