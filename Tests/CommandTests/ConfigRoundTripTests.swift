import Foundation
import XCTest
import ArgumentParser
@testable import rmtrain
@testable import Training

/// `rmtrain train`'s flags and RUN_DIR/config.yaml: every flag is a setting that config.yaml records and
/// `--config` reads back to the same run, or one of the few flags that belong to a launch alone.
final class ConfigRoundTripTests: XCTestCase {
    /// Flags that are not settings of the training (config.yaml leaves them out on purpose): the invocation's
    /// group, `--config` and `--help`.
    static let unrecorded = Set(InvocationSettings.flagNames + ["config", "help"])

    /// A value other than the default for every setting, in flag syntax (true: the flag is given).
    static let nonDefault: [String: String] = [
        "data": "fashion-mnist:/tmp/fm", "model": "resnet56", "epochs": "7", "batch-size": "48", "eval-batch-size": "100",
        "lr": "0.05", "scale-lr": "true", "wd": "0.0001", "momentum": "0.8", "nesterov": "true", "no-bn-decay": "true",
        "warmup-epochs": "2.0", "lr-schedule": "step", "sched-on": "epochs", "precision": "bf16-mixed", "allreduce-dtype": "bf16", "log-interval": "50", "milestones": "3,5", "lr-decay": "0.2", "seed": "99",
        "bucket-mb": "4.0", "no-overlap": "true", "check-every": "17", "freeze-bn": "true", "mix": "cutmix",
        "rm-alpha": "0.3", "rm-omega": "0.2", "rm-interp": "bilinear", "rm-history": "persistent", "rm-share-head": "true",
        "rm-legacy-transposed-roi": "true", "rm-box": "per-rank", "mixup-alpha": "0.4", "cutmix-alpha": "0.7",
        "mix-prob": "0.9", "switch-prob": "0.3", "smoothing": "0.1", "smoothing-style": "rm", "bad-image": "fail",
        "aug-plus": "true", "drop-last": "true", "out": "/tmp/run-x", "save-every": "11", "keep": "3", "ckpt-level": "5",
        "loader-threads": "3", "collective-timeout": "77.0", "skip-nonfinite": "true", "cutmix-minmax": "0.2,0.8",
        "image-size": "40", "val-split": "test", "max-steps": "13", "train-limit": "300", "val-limit": "50",
        "init-weights": "/tmp/pretrained.safetensors", "model-ema": "0.999", "model-ema-warmup": "true",
        "no-tensorboard": "true", "tensorboard-every": "7",
    ]

    /// Every `--flag` of `rmtrain train`, hidden ones included.
    private func flags() -> Set<String> {
        let help = TrainCommand.helpMessage(includeHidden: true, columns: 400)
        let names = help.matches(of: /--([a-z0-9-]+)/).map { String($0.1) }
        return Set(names)
    }

    private func arguments(_ settings: [String: String]) -> [String] {
        settings.sorted { $0.key < $1.key }.flatMap { k, v -> [String] in
            v == "true" ? ["--" + k] : v == "false" ? [] : ["--" + k, v]
        }
    }

    override func setUp() {
        // --init-weights must name a file that exists.
        FileManager.default.createFile(atPath: Self.nonDefault["init-weights"]!, contents: Data())
    }

    func testEveryFlagIsARecordedSettingOrLaunchOnly() throws {
        let c = try TrainCommand.parse(arguments(Self.nonDefault)).makeConfig()
        let keys = Set(c.settings.map(\.key))
        let flags = flags()
        XCTAssertEqual(flags.subtracting(keys).subtracting(Self.unrecorded), [], "flags that config.yaml would not record")
        XCTAssertEqual(keys.subtracting(flags), [], "settings without a flag to read them back")
        XCTAssertEqual(keys.subtracting(Self.nonDefault.keys), [], "settings this test gives no value (add one)")
    }

    /// Every setting at a non-default value → config.yaml → `--config` → the same settings, value for value.
    func testConfigYAMLRoundTripsEverySetting() throws {
        let c1 = try TrainCommand.parse(arguments(Self.nonDefault)).makeConfig()
        for (k, v) in c1.settings where v != "false" {
            XCTAssertEqual(v, Self.nonDefault[k], "--\(k) did not reach the configuration")
        }
        XCTAssertNotEqual(c1.settings.map(\.value), TrainConfig().settings.map(\.value))
        let path = NSTemporaryDirectory() + "config-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try c1.resolvedYAML.write(toFile: path, atomically: true, encoding: .utf8)
        let c2 = try TrainCommand.parse(try ConfigFile.flags(path)).makeConfig()
        XCTAssertEqual(c2.settings.map(\.key), c1.settings.map(\.key))
        XCTAssertEqual(c2.settings.map(\.value), c1.settings.map(\.value))
        // And the defaults round-trip too (booleans false, optional settings absent).
        try TrainConfig().resolvedYAML.write(toFile: path, atomically: true, encoding: .utf8)
        let d = try TrainCommand.parse(try ConfigFile.flags(path)).makeConfig()
        XCTAssertEqual(d.settings.map(\.value), TrainConfig().settings.map(\.value))
    }

    /// `--eval-batch-size` defaults to `--batch-size` (timm's validation_batch_size): a larger evaluation
    /// batch would grow every layer's buffers. It may change on resume (it does not change the training).
    func testEvalBatchSizeDefaultsToTheTrainingBatch() throws {
        XCTAssertEqual(try TrainCommand.parse(["--batch-size", "48"]).makeConfig().evaluationBatchSize, 48)
        XCTAssertEqual(try TrainCommand.parse(["--batch-size", "48", "--eval-batch-size", "100"]).makeConfig().evaluationBatchSize, 100)
        XCTAssertTrue(TrainConfig.resumableDifferences.contains("eval-batch-size"))
    }

    /// A flag's group decides its place: training and resumable flags are fingerprinted (compared across ranks
    /// and on resume), launch flags are recorded in config.yaml only, invocation flags nowhere.
    func testEachGroupsScopePlacesItsFlags() throws {
        let c = try TrainCommand.parse(arguments(Self.nonDefault)).makeConfig()
        let fingerprinted = Set(c.fingerprint.map { String($0.split(separator: "=")[0]) })
        let recorded = Set(c.settings.map(\.key))
        let training = Set(RunSettings.flagNames + OptimizerSettings.flagNames + WeightAverageSettings.flagNames
                           + AllReduceSettings.flagNames + MixingSettings.flagNames + DataSettings.flagNames)
        XCTAssertEqual(fingerprinted, training.union(ResumableSettings.flagNames))
        XCTAssertEqual(recorded.subtracting(fingerprinted), Set(LaunchSettings.flagNames + LoaderSettings.flagNames))
        XCTAssertTrue(recorded.isDisjoint(with: InvocationSettings.flagNames))
        XCTAssertEqual(TrainConfig.resumableDifferences, ["max-steps", "check-every", "eval-batch-size", "log-interval"])
        // The names derived from the properties are ArgumentParser's, including runs of capitals.
        XCTAssertEqual(["noBNDecay", "_scaleLR", "bucketMB", "rmLegacyTransposedRoi", "URLSession"].map { flagName(property: $0) },
                       ["no-bn-decay", "scale-lr", "bucket-mb", "rm-legacy-transposed-roi", "url-session"])
    }

    /// Every numeric flag refuses NaN and ±infinity (Double("nan") parses), naming the flag, before any work.
    func testEveryNumericFlagRefusesNonFiniteValues() throws {
        let numeric = Self.nonDefault.filter { Double($0.value) != nil && Int($0.value) == nil }.keys.sorted()
        XCTAssertGreaterThanOrEqual(numeric.count, 15)
        for flag in numeric {
            for bad in ["nan", "inf", "-inf"] {
                XCTAssertThrowsError(try TrainCommand.parse(["--" + flag, bad]), "--\(flag) \(bad)") { error in
                    XCTAssertTrue(TrainCommand.message(for: error).contains("--\(flag)"), TrainCommand.message(for: error))
                }
            }
        }
    }

    /// Numbers take the next argument whatever it looks like (`--lr -0.1` reaches the check); text flags do not
    /// swallow the next flag (`--val-split --aug-plus` is a missing value, not a folder named "--aug-plus").
    func testNumbersTakeNegativeValuesAndTextFlagsDoNotSwallowFlags() throws {
        XCTAssertTrue(TrainCommand.message(for: TrainCommand.parseErrorFor(["--lr", "-0.1"])).contains("must be a finite number > 0"))
        XCTAssertEqual(try TrainCommand.parse(["--cutmix-minmax", "0.2,0.8", "--mix", "cutmix"]).makeConfig().cutmixMinmax, 0.2...0.8)
        XCTAssertTrue(TrainCommand.message(for: TrainCommand.parseErrorFor(["--val-split", "--aug-plus"])).contains("Missing value"))
        XCTAssertTrue(TrainCommand.message(for: TrainCommand.parseErrorFor(["--mix", "cutmix", "--cutmix-minmax", "0.2,x,0.8"]))
                        .contains("expected MIN,MAX"))
    }
}

private extension TrainCommand {
    static func parseErrorFor(_ arguments: [String]) -> Error {
        do { _ = try parse(arguments); return CancellationError() } catch { return error }
    }
}
