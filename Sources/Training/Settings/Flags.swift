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
//   * its help, with what is allowed and the default appended (in the flag's own syntax);
//   * its validation (`FlagCheck`): a bad value stops the command before any work, in one line naming the
//     flag, the value and what is allowed; NaN and ±infinity fail every numeric check;
//   * its YAML key in RUN_DIR/config.yaml (the flag name) and its value there (`FlagText`), unless its group's
//     scope is `invocation`; an optional flag only when given;
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
    /// How the argument is taken: numbers `.unconditional` (so that `--lr -0.1` reaches the check as a value),
    /// text `.next` (so that `--val-split --aug-plus` is a missing value, not a folder named "--aug-plus").
    static var parsing: SingleValueParsingStrategy { get }
}

extension FlagText {
    public static var expected: String { "a valid value" }
    public static var parsing: SingleValueParsingStrategy { .next }
}

extension FlagText where Self: ExpressibleByArgument {
    public static func parse(flag text: String) throws -> Self {
        guard let v = Self(argument: text) else { throw ValidationError("expected \(expected)") }
        return v
    }
}

extension Int: FlagText {
    public var flagText: String? { "\(self)" }
    public static var expected: String { "an integer" }
    public static var parsing: SingleValueParsingStrategy { .unconditional }
}
extension UInt64: FlagText {
    public var flagText: String? { "\(self)" }
    public static var expected: String { "an integer ≥ 0" }
    public static var parsing: SingleValueParsingStrategy { .unconditional }
}
extension Double: FlagText {
    public var flagText: String? { "\(self)" }
    public static var expected: String { "a number" }
    public static var parsing: SingleValueParsingStrategy { .unconditional }
}
extension String: FlagText { public var flagText: String? { self } }
extension Bool: FlagText { public var flagText: String? { "\(self)" } }
extension Optional: FlagText where Wrapped: FlagText {
    public var flagText: String? { self?.flagText ?? nil }
    public static func parse(flag text: String) throws -> Self { try Wrapped.parse(flag: text) }
    public static var parsing: SingleValueParsingStrategy { Wrapped.parsing }
}
extension FlagText where Self: RawRepresentable, RawValue == String {
    public var flagText: String? { rawValue }
}

/// Epoch lists (`--milestones 150,225`): comma-separated integers, "" for none.
extension Array: FlagText where Element == Int {
    public var flagText: String? { map(String.init).joined(separator: ",") }
    public static var parsing: SingleValueParsingStrategy { .unconditional }
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
    public static var parsing: SingleValueParsingStrategy { .unconditional }
    public static func parse(flag text: String) throws -> ClosedRange<Double> {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0) }
        guard parts.count == 2, let lo = parts[0], let hi = parts[1], lo.isFinite, hi.isFinite, lo <= hi else {
            throw ValidationError("expected MIN,MAX")
        }
        return lo...hi
    }
}

/// What a flag's value must satisfy, said in words for the error line ("must be in [0, 1)").
public struct FlagCheck<Value: FlagText>: Sendable {
    public let allowed: String
    public let test: @Sendable (Value) -> Bool
    /// Whether help repeats `allowed` (not when the help itself says it: a list of names, "a file").
    public let inHelp: Bool
    public init(_ allowed: String, inHelp: Bool = true, _ test: @escaping @Sendable (Value) -> Bool) {
        (self.allowed, self.inHelp, self.test) = (allowed, inHelp, test)
    }

    /// The help's closing parenthesis: what is allowed and the default, in flag syntax.
    func helpSuffix(default value: Value?) -> String {
        let parts = [inHelp ? allowed : nil, value?.flagText.flatMap { $0.isEmpty ? nil : "default: \($0)" }].compactMap { $0 }
        return parts.isEmpty ? "" : " (\(parts.joined(separator: "; ")))"
    }

    /// Parses and checks a command-line argument (swift-argument-parser's `transform`).
    var parser: @Sendable (String) throws -> Value {
        { text in
            let v = try Value.parse(flag: text)
            guard test(v) else { throw ValidationError("must be \(allowed)") }
            return v
        }
    }

    public static var any: FlagCheck { FlagCheck("any value", inHelp: false) { _ in true } }
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
        FlagCheck("one of \(names.joined(separator: ", "))", inHelp: false) { names.contains($0) }
    }
    /// A path to an existing file.
    public static var existingFile: FlagCheck {
        FlagCheck("an existing file", inHelp: false) { FileManager.default.fileExists(atPath: $0) }
    }
}

extension Option where Value: FlagText & Sendable {
    /// A flag with a default, parsed by `Value.parse(flag:)` (taken as `Value.parsing` says) and checked by
    /// `check`; help ends with what is allowed and the default.
    public init(wrappedValue: Value, help: ArgumentHelp, check: FlagCheck<Value>) {
        var help = help
        help.abstract += check.helpSuffix(default: wrappedValue)
        self.init(wrappedValue: wrappedValue, parsing: Value.parsing, help: help, transform: check.parser)
    }

    /// An optional flag (nil when not given), parsed and checked as above.
    public init<T: FlagText & Sendable>(help: ArgumentHelp, check: FlagCheck<T>) where Value == T? {
        var help = help
        help.abstract += check.helpSuffix(default: nil)
        self.init(wrappedValue: nil, parsing: T.parsing, help: help, transform: check.parser)
    }
}

/// Where a group's flags belong in a run's record.
public enum SettingScope: Sendable {
    /// Recorded in config.yaml and the fingerprint; must be equal on every rank and on resume (except that
    /// --epochs may grow and --data may move to the same images: `Trainer.checkSameRun`).
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
extension Flag: RecordedArgument where Value == Bool { var recordedText: String? { wrappedValue.flagText } }

extension SettingsGroup {
    /// The group's defaults (every flag absent).
    public static var defaults: Self {
        do { return try parse([]) } catch { fatalError("\(Self.self): defaults do not parse: \(error)") }
    }

    /// Each flag's name and value in flag syntax, in declaration order; optional flags not given are left out.
    public var recorded: [(key: String, value: String)] {
        arguments.compactMap { name, argument in argument.recordedText.map { (name, $0) } }
    }

    /// Every flag name of the group, given or not.
    public static var flagNames: [String] { defaults.arguments.map(\.name) }

    /// The group's flags in declaration order, under their flag names.
    private var arguments: [(name: String, argument: RecordedArgument)] {
        Mirror(reflecting: self).children.compactMap { child in
            guard let label = child.label else { return nil }
            guard let argument = child.value as? RecordedArgument else {
                // An @Option whose value has no FlagText, or a @Flag of another type than Bool, would vanish from the record.
                let type = "\(type(of: child.value))"
                assert(!type.hasPrefix("Option<") && !type.hasPrefix("Flag<"), "\(Self.self).\(label): \(type) is not recordable")
                return nil
            }
            return (flagName(property: label), argument)
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
