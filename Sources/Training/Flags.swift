import ArgumentParser
import Foundation

// How a flag is declared once. A flag is a property of a `SettingsGroup` (a swift-argument-parser
// `ParsableArguments` struct), written as
//
//     @Option(help: "Weight decay.", check: .number("in [0, 1)") { $0 >= 0 && $0 < 1 })
//     public var wd = 5e-4
//
// and that one declaration gives everything else:
//   * the flag's name: swift-argument-parser derives `--wd` from the property name (`flagName` below
//     derives the same name, and `ConfigRoundTripTests` parses every recorded name back to prove it);
//   * its help, with the default appended in the flag's own syntax;
//   * its validation (`FlagCheck`): a bad value stops the command before any work, in one line naming the
//     flag, the value and what is allowed; NaN and ±infinity fail every numeric check;
//   * its YAML key in RUN_DIR/config.yaml (the flag name) and its value there (`FlagText`);
//   * its place in the configuration fingerprint: the group's `scope`.
// Checks that relate two flags (--warmup-epochs ≤ --epochs) stay in the group's `validate()`.

/// A flag value in flag syntax: what config.yaml records, `--config` reads back and help shows as the default.
public protocol FlagText {
    /// nil: nothing to record (an optional flag that was not given).
    var flagText: String? { get }
    /// Parses the flag's argument; throws a `ValidationError` saying what was expected.
    static func parse(flag text: String) throws -> Self
    /// What an argument must look like, for the error line ("an integer").
    static var expected: String { get }
}

extension FlagText {
    public static var expected: String { "a valid value" }
}

extension FlagText where Self: ExpressibleByArgument {
    public static func parse(flag text: String) throws -> Self {
        guard let v = Self(argument: text) else { throw ValidationError("expected \(expected)") }
        return v
    }
}

extension Int: FlagText { public var flagText: String? { "\(self)" }; public static var expected: String { "an integer" } }
extension UInt64: FlagText { public var flagText: String? { "\(self)" }; public static var expected: String { "an integer ≥ 0" } }
extension Double: FlagText { public var flagText: String? { "\(self)" }; public static var expected: String { "a number" } }
extension String: FlagText { public var flagText: String? { self } }
extension Bool: FlagText { public var flagText: String? { "\(self)" } }
extension Optional: FlagText where Wrapped: FlagText {
    public var flagText: String? { self?.flagText ?? nil }
    public static func parse(flag text: String) throws -> Self { try Wrapped.parse(flag: text) }
}
extension FlagText where Self: RawRepresentable, RawValue == String {
    public var flagText: String? { rawValue }
}

/// Epoch lists (`--milestones 150,225`): comma-separated integers, "" for none.
extension Array: FlagText where Element == Int {
    public var flagText: String? { map(String.init).joined(separator: ",") }
    public static func parse(flag text: String) throws -> [Int] {
        if text.isEmpty { return [] }
        return try text.split(separator: ",").map {
            guard let v = Int($0.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("expected comma-separated integers")
            }
            return v
        }
    }
}

/// Ranges `MIN,MAX` (`--cutmix-minmax 0.2,0.8`).
extension ClosedRange: FlagText where Bound == Double {
    public var flagText: String? { "\(lowerBound),\(upperBound)" }
    public static func parse(flag text: String) throws -> ClosedRange<Double> {
        let parts = text.split(separator: ",").compactMap { Double($0) }
        guard parts.count == 2, parts.allSatisfy(\.isFinite), parts[0] <= parts[1] else {
            throw ValidationError("expected MIN,MAX")
        }
        return parts[0]...parts[1]
    }
}

/// What a flag's value must satisfy, said in words for the error line ("must be in [0, 1)").
public struct FlagCheck<Value: FlagText>: Sendable {
    public let allowed: String
    public let test: @Sendable (Value) -> Bool
    public init(_ allowed: String, _ test: @escaping @Sendable (Value) -> Bool) { self.allowed = allowed; self.test = test }

    /// Parses and checks a command-line argument (swift-argument-parser's `transform`).
    var parser: @Sendable (String) throws -> Value {
        { text in
            let v = try Value.parse(flag: text)
            guard test(v) else { throw ValidationError("must be \(allowed)") }
            return v
        }
    }

    public static var any: FlagCheck { FlagCheck("any value") { _ in true } }
}

extension FlagCheck where Value == Int {
    /// An integer in `range`; an upper bound of Int.max reads "at least N".
    public static func range(_ range: ClosedRange<Int>) -> FlagCheck {
        FlagCheck(range.upperBound == .max ? "at least \(range.lowerBound)"
                                           : "between \(range.lowerBound) and \(range.upperBound)") { range.contains($0) }
    }
}

extension FlagCheck where Value == Double {
    /// A finite number satisfying `test`; `allowed` says which ("in (0, 1]").
    public static func number(_ allowed: String, _ test: @escaping @Sendable (Double) -> Bool) -> FlagCheck {
        FlagCheck(allowed) { $0.isFinite && test($0) }
    }
    public static var positive: FlagCheck { number("a finite number > 0") { $0 > 0 } }
    public static var nonNegative: FlagCheck { number("a finite number ≥ 0") { $0 >= 0 } }
    /// A watchdog limit: up to a day.
    public static var timeout: FlagCheck { number("in (0, 86400] seconds") { $0 > 0 && $0 <= 86_400 } }
}

extension FlagCheck where Value == String {
    public static func oneOf(_ names: [String]) -> FlagCheck {
        FlagCheck("one of \(names.joined(separator: ", "))") { names.contains($0) }
    }
    /// A path to an existing file.
    public static var existingFile: FlagCheck {
        FlagCheck("an existing file") { FileManager.default.fileExists(atPath: $0) }
    }
}

extension Option where Value: FlagText & Sendable {
    /// A flag with a default, parsed by `Value.parse(flag:)` and checked by `check`; help ends with the default.
    /// Parsing is `.unconditional` so that negative numbers reach the check.
    public init(wrappedValue: Value, help: ArgumentHelp, check: FlagCheck<Value>) {
        var help = help
        if let d = wrappedValue.flagText, !d.isEmpty { help.abstract += " (default: \(d))" }
        self.init(wrappedValue: wrappedValue, parsing: .unconditional, help: help, transform: check.parser)
    }

    /// An optional flag (nil when not given), parsed and checked as above.
    public init<T: FlagText & Sendable>(help: ArgumentHelp, check: FlagCheck<T>) where Value == T? {
        self.init(wrappedValue: nil, parsing: .unconditional, help: help, transform: check.parser)
    }
}

/// Where a group's flags belong in a run's record.
public enum SettingScope: Sendable {
    /// Recorded in config.yaml and the fingerprint; must be equal on every rank and on resume.
    case training
    /// Recorded and fingerprinted (equal on every rank), but may change on resume (--max-steps).
    case resumable
    /// Recorded in config.yaml, not fingerprinted: may differ across ranks and resumes (--out, --keep).
    case launch
    /// Not recorded: belongs to one invocation (--resume, --quiet, --threads).
    case invocation
}

/// A group of flags: its properties are the flags, its `scope` their place in the record.
public protocol SettingsGroup: ParsableArguments, Sendable {
    static var scope: SettingScope { get }
}

/// Option and Flag properties whose value `SettingsGroup.recorded` can read.
protocol RecordedArgument { var recordedText: String? { get } }
extension Option: RecordedArgument where Value: FlagText { var recordedText: String? { wrappedValue.flagText } }
extension Flag: RecordedArgument where Value == Bool { var recordedText: String? { "\(wrappedValue)" } }

extension SettingsGroup {
    /// The group's defaults (every flag absent).
    public static var defaults: Self {
        do { return try parse([]) } catch { fatalError("\(Self.self): defaults do not parse: \(error)") }
    }

    /// Each flag's name and value in flag syntax, in declaration order; optional flags not given are left out.
    public var recorded: [(key: String, value: String)] {
        Mirror(reflecting: self).children.compactMap { child in
            guard let label = child.label, let text = (child.value as? RecordedArgument)?.recordedText else { return nil }
            return (flagName(property: label), text)
        }
    }

    /// Every flag name of the group, given or not.
    public static var flagNames: [String] {
        Mirror(reflecting: defaults).children.compactMap { child in
            guard let label = child.label, child.value is RecordedArgument else { return nil }
            return flagName(property: label)
        }
    }
}

/// The long flag name swift-argument-parser derives from a property (`_batchSize` or `batchSize` →
/// `batch-size`, `noBNDecay` → `no-bn-decay`): words split at a capital, a run of capitals kept together
/// unless its last one starts a word (ArgumentParser's `convertedToSnakeCase(separator: "-")`).
func flagName(property label: String) -> String {
    let s = Array(label.hasPrefix("_") ? label.dropFirst() : Substring(label))
    var out = "", separate = true
    for (i, c) in s.enumerated() {
        if c.isUppercase {
            if separate && !out.isEmpty { out.append("-") }
            separate = i + 2 < s.count && s[i + 1].isUppercase && s[i + 2].isLowercase
        } else {
            separate = c != "-"
        }
        out += c.lowercased()
    }
    return out
}
