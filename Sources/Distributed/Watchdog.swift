import Foundation

/// Aborts the job when one collective waits longer than `timeout` seconds — a dead or stuck rank
/// must end the job with a message, never leave the others hanging. The training thread marks
/// entry and exit of each blocking collective; a background thread checks the clock.
public final class CollectiveWatchdog: @unchecked Sendable {
    private let rank: Int
    private let timeout: Double
    private let abort: @Sendable (Int32) -> Void
    private let lock = NSLock()
    private var current: (op: String, since: Date)?
    private var stopped = false
    /// The training step (1-based, as every other message numbers steps), for the message.
    public var step: Int {
        get { lock.withLock { _step } }
        set { lock.withLock { _step = newValue } }
    }
    private var _step = 0

    public init(rank: Int, timeout: Double, abort: @escaping @Sendable (Int32) -> Void) {
        self.rank = rank
        self.timeout = timeout
        self.abort = abort
        guard timeout > 0 else { return }
        let t = Thread { [weak self] in self?.watch() }
        t.name = "collective-watchdog"
        t.start()
    }

    public func enter(_ op: String) { lock.withLock { current = (op, Date()) } }
    public func leave() { lock.withLock { current = nil } }
    public func stop() { lock.withLock { stopped = true } }

    private func watch() {
        while true {
            Thread.sleep(forTimeInterval: min(0.5, timeout / 4))
            let (op, since, step, stop): (String?, Date?, Int, Bool) = lock.withLock {
                (current?.op, current?.since, _step, stopped)
            }
            if stop { return }
            if let op, let since, Date().timeIntervalSince(since) > timeout {
                let msg = "[rank \(rank)] rmtrain: error: collective '\(op)' at step \(step) waited more than "
                    + "\(Int(timeout)) s (--collective-timeout): another rank died, stalled, or is in another "
                    + "collective (ranks that disagree on the number of steps); aborting the job\n"
                FileHandle.standardError.write(Data(msg.utf8))
                abort(3)
                exit(3)
            }
        }
    }
}
