import Foundation

/// Where one rank stands among the collectives, as the watchdog tells another rank that asks.
/// `sequence` counts logical collectives from 1 (a sliced broadcast is one; a non-blocking all-reduce
/// counts when it starts), so ranks that issued the same collectives hold the same number.
public struct CollectiveState: Equatable, Sendable {
    public var rank: Int
    /// True while the rank blocks in a collective; false while it computes between collectives.
    public var waiting: Bool
    public var sequence: Int
    /// The training step (1-based), as every other message numbers steps.
    public var step: Int
    /// The collective it waits in, or the last one it left.
    public var op: String
    /// Seconds it has waited (or computed since it left `op`).
    public var seconds: Double

    public init(rank: Int, waiting: Bool, sequence: Int, step: Int, op: String, seconds: Double) {
        (self.rank, self.waiting, self.sequence, self.step, self.op, self.seconds) = (rank, waiting, sequence, step, op, seconds)
    }

    /// One line of tab-separated fields (the op may not contain a tab), for the wire.
    public var encoded: [UInt8] {
        Array("\(rank)\t\(waiting ? 1 : 0)\t\(sequence)\t\(step)\t\(Int(seconds))\t\(op.replacingOccurrences(of: "\t", with: " "))".utf8)
    }

    public init?(decoding bytes: [UInt8]) {
        let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        let f = text.split(separator: "\t", maxSplits: 5, omittingEmptySubsequences: false)
        guard f.count == 6, let r = Int(f[0]), let w = Int(f[1]), let q = Int(f[2]), let s = Int(f[3]),
              let t = Double(f[4]) else { return nil }
        self.init(rank: r, waiting: w == 1, sequence: q, step: s, op: String(f[5]), seconds: t)
    }

    /// "collective #12 'op' at step 3" (the step only once training has started).
    var place: String { "collective #\(sequence) '\(op)'" + (step > 0 ? " at step \(step)" : "") }
}

/// Asks the other ranks where they stand (over a channel of its own, so that it works while the
/// training thread blocks in a collective) and answers their questions.
public protocol CollectiveStatusChannel: AnyObject {
    /// Answers any question that arrived, with `state()`. Called by the watchdog thread every tick.
    func serve(_ state: () -> CollectiveState)
    /// Every other rank's state, waiting at most `deadline` seconds (and answering questions meanwhile,
    /// since the others may be asking too); a rank that does not answer is absent.
    func ask(deadline: Double, answering state: () -> CollectiveState) -> [Int: CollectiveState]
    /// Cancels what is pending; called once, before MPI is finalised.
    func close()
}

/// Names the cause of a stalled collective from every rank's state: ranks that did not answer (dead, or
/// stopped whole), ranks that compute instead of joining (stalled), ranks that wait in another
/// collective (they disagree on the collectives), or every rank in the same one (MPI or the network).
public func diagnoseStall(me: CollectiveState, others: [Int: CollectiveState], size: Int) -> String {
    let missing = (0..<size).filter { $0 != me.rank && others[$0] == nil }
    let answered = others.values.sorted { $0.rank < $1.rank }
    let computing = answered.filter { !$0.waiting }
    let elsewhere = answered.filter { $0.waiting && ($0.sequence != me.sequence || $0.op != me.op) }
    var causes: [String] = []
    if !elsewhere.isEmpty {
        causes.append("ranks disagree on the collectives (different numbers or order of them: a bug, or "
            + "ranks with other data or flags): rank \(me.rank) waits in \(me.place), "
            + elsewhere.map { "rank \($0.rank) in \($0.place)" }.joined(separator: ", "))
    }
    if !computing.isEmpty {
        causes.append(computing.map {
            "rank \($0.rank) is not in a collective: it has computed for \(Int($0.seconds)) s since "
                + ($0.sequence == 0 ? "it started" : "it left \($0.place)") + " (stalled)"
        }.joined(separator: "; "))
    }
    if !missing.isEmpty {
        let list = missing.map(String.init).joined(separator: ", ")
        causes.append("rank\(missing.count > 1 ? "s" : "") \(list) did not answer (dead, or stopped whole)")
    }
    if causes.isEmpty {
        causes.append(size > 1 ? "every rank waits in this collective: MPI or the network stalled"
                               : "the only rank waits in it")
    }
    return causes.joined(separator: "; ")
}

/// Aborts the job when one collective waits longer than `timeout` seconds — a dead, stuck or disagreeing
/// rank must end the job with a message naming the cause, never leave the others hanging. The training
/// thread marks the start of each collective and the blocking part of it; a background thread checks
/// the clock, answers other ranks' questions and, on a timeout, asks them where they stand.
public final class CollectiveWatchdog: @unchecked Sendable {
    private let rank: Int
    private let size: Int
    private let timeout: Double
    private let abort: @Sendable (Int32) -> Void
    private let channel: CollectiveStatusChannel?
    private let lock = NSLock()
    private var sequence = 0
    private var op = "start"
    private var waiting = false
    private var since = Date()
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)
    private var running = false
    /// The training step (1-based, as every other message numbers steps), for the message.
    public var step: Int {
        get { lock.withLock { _step } }
        set { lock.withLock { _step = newValue } }
    }
    private var _step = 0

    /// `channel` (optional) lets the watchdog ask other ranks where they stand; without it a timeout
    /// names only this rank's collective.
    public init(rank: Int, size: Int, timeout: Double, channel: CollectiveStatusChannel?,
                abort: @escaping @Sendable (Int32) -> Void) {
        self.rank = rank
        self.size = size
        self.timeout = timeout
        self.abort = abort
        self.channel = channel
        guard timeout > 0 else { return }
        running = true
        let t = Thread { [self] in watch() }
        t.name = "collective-watchdog"
        t.start()
    }

    /// A new collective starts (blocking or not); returns its sequence number.
    @discardableResult
    public func begin(_ op: String) -> Int {
        lock.withLock { sequence += 1; self.op = op; return sequence }
    }
    /// The training thread blocks in collective `sequence` (from `begin`).
    public func enter(_ op: String, sequence: Int) {
        lock.withLock { (self.op, waiting, since, current) = (op, true, Date(), sequence) }
    }
    public func leave() { lock.withLock { (waiting, since) = (false, Date()) } }
    private var current = 0

    /// Stops the thread and closes the channel; returns once both are done (before MPI_Finalize).
    public func stop() {
        let wasRunning: Bool = lock.withLock { let r = running && !stopped; stopped = true; return r }
        if wasRunning { finished.wait() }
    }

    private func state() -> CollectiveState {
        lock.withLock {
            CollectiveState(rank: rank, waiting: waiting, sequence: waiting ? current : sequence, step: _step,
                            op: op, seconds: Date().timeIntervalSince(since))
        }
    }

    private func watch() {
        while true {
            Thread.sleep(forTimeInterval: min(0.25, timeout / 4))
            if lock.withLock({ stopped }) { channel?.close(); finished.signal(); return }
            channel?.serve(state)
            let me = state()
            guard me.waiting, me.seconds > timeout else { continue }
            var msg = "[rank \(rank)] rmtrain: error: \(me.place) waited more than \(Int(timeout)) s (--collective-timeout)"
            if let channel {
                let others = channel.ask(deadline: 5, answering: state)
                msg += ": " + diagnoseStall(me: state(), others: others, size: size)
            } else {
                msg += ": another rank died, stalled, or is in another collective"
            }
            FileHandle.standardError.write(Data((msg + "; aborting the job\n").utf8))
            abort(3)
            exit(3)
        }
    }
}
