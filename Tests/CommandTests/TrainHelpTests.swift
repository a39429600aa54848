import XCTest
@testable import rmtrain
@testable import Training

/// `rmtrain train --help` in sections by concept: each settings group's flags under its group's title, the
/// sections in the order a user sets up a run (model and data, optimizer and schedule, mixing, weight
/// average, distributed, then length, output and this invocation).
final class TrainHelpTests: XCTestCase {
    /// Section title → the long flags listed under it, in the order of the help.
    private func sections() -> [(title: String, flags: [String])] {
        var out: [(title: String, flags: [String])] = []
        for line in TrainCommand.helpMessage(columns: 1000).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasSuffix(":"), !line.hasPrefix(" "), line.uppercased() == line, !line.hasPrefix("USAGE") {
                out.append((String(line.dropLast()), []))
            } else if line.hasPrefix("  --"), !out.isEmpty {
                let flag = line.dropFirst(4).prefix { $0 != " " && $0 != "," }
                out[out.count - 1].flags.append(String(flag))
            }
        }
        return out
    }

    func testSectionsFollowTheConcepts() {
        let s = sections()
        XCTAssertEqual(s.map { String($0.title.prefix { $0 != " " && $0 != "(" }) },
                       ["MODEL", "OPTIMIZER", "MIXING", "WEIGHT", "DISTRIBUTED", "LENGTH", "OUTPUT", "THIS", "OPTIONS"])
        XCTAssertEqual(s.first?.title, "MODEL AND DATA")
        XCTAssertEqual(s.dropFirst().first?.title, "OPTIMIZER AND SCHEDULE")
        let byTitle = Dictionary(uniqueKeysWithValues: s.map { ($0.title.prefix { $0 != " " && $0 != "(" }, Set($0.flags)) })
        let expected: [(Substring, [String])] = [
            ("MODEL", RunSettings.flagNames + DataSettings.flagNames + LoaderSettings.flagNames),
            ("OPTIMIZER", OptimizerSettings.flagNames), ("MIXING", MixingSettings.flagNames),
            ("WEIGHT", WeightAverageSettings.flagNames), ("DISTRIBUTED", AllReduceSettings.flagNames),
            ("LENGTH", ResumableSettings.flagNames), ("OUTPUT", LaunchSettings.flagNames),
        ]
        for (title, flags) in expected { XCTAssertEqual(byTitle[title], Set(flags), "section \(title)") }
        XCTAssertTrue(byTitle["OPTIMIZER"]!.isSuperset(of: ["epochs", "lr", "wd", "lr-schedule", "warmup-epochs"]))
        XCTAssertEqual(byTitle["WEIGHT"], ["model-ema", "model-ema-warmup"])
    }
}
