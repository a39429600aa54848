import Foundation

/// Where warnings go: stderr, prefixed with `[rank k] ` in a multi-rank job so a user can tell which
/// process said what (set once at start-up by the command).
public enum Diagnostics {
    nonisolated(unsafe) public private(set) static var rankPrefix = ""

    public static func setRank(_ rank: Int, of size: Int) { rankPrefix = size > 1 ? "[rank \(rank)] " : "" }

    public static func warning(_ message: String) {
        FileHandle.standardError.write(Data("\(rankPrefix)rmtrain: warning: \(message)\n".utf8))
    }
}
