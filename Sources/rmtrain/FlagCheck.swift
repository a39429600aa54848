import ArgumentParser

/// One-line checks of flag values, run by ArgumentParser's `validate()` before any data is read: a bad
/// value stops the command with exit 64 and a line naming the flag, the value and the range. NaN and
/// ±infinity fail every check (Double("nan") and Double("inf") parse, so they must be refused here).
enum FlagCheck {
    /// `value` must be finite and satisfy `ok`; `range` says what is allowed ("in (0, 1]").
    static func number(_ flag: String, _ value: Double, _ range: String, _ ok: (Double) -> Bool) throws {
        guard value.isFinite, ok(value) else { throw ValidationError("\(flag) must be \(range), got \(value)") }
    }

    static func positive(_ flag: String, _ value: Double) throws {
        try number(flag, value, "a finite number > 0") { $0 > 0 }
    }

    static func nonNegative(_ flag: String, _ value: Double) throws {
        try number(flag, value, "a finite number ≥ 0") { $0 >= 0 }
    }

    static func integer(_ flag: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            let upper = range.upperBound == Int.max ? "" : " and \(range.upperBound)"
            throw ValidationError(upper.isEmpty ? "\(flag) must be at least \(range.lowerBound), got \(value)"
                                                : "\(flag) must be between \(range.lowerBound)\(upper), got \(value)")
        }
    }
}
