import Foundation

/// Where warnings go: stderr, prefixed with `[rank k] ` in a multi-rank job so a user can tell which
/// process said what (set once at start-up by the command).
public enum Diagnostics {
    nonisolated(unsafe) public private(set) static var rankPrefix = ""

    public static func setRank(_ rank: Int, of size: Int) { rankPrefix = size > 1 ? "[rank \(rank)] " : "" }

    public static func warning(_ message: String) {
        Console.errorLine("\(rankPrefix)rmtrain: warning: \(message)")
    }
}

/// Runs `body`, adding the seconds it took (monotonic clock) to `total`: the step's mixing and all-reduce
/// wait times, a convolution layer's kernel time.
@inline(__always) public func timed<T>(_ total: inout Double, _ body: () throws -> T) rethrows -> T {
    let t0 = DispatchTime.now().uptimeNanoseconds
    defer { total += Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9 }
    return try body()
}
