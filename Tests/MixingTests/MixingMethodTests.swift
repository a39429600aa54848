import XCTest
import Kernels
import Layers
@testable import Mixing

/// The `MixingMethod` objects as the training step and `visualize` use them, and the named sums they keep.
final class MixingMethodTests: XCTestCase {
    private let b = 4, h = 8, w = 8, k = 5

    private func rm(rank: Int? = nil, head: Bool = true, history: HistoryMode = .perEpoch) -> RecursiveMixMethod {
        let settings = RecursiveMixMethod.Settings(mixer: RecursiveMixConfig(alpha: 0.5), omega: 0.1, smoothing: 0, style: .rm,
                                                   lifetime: history, seed: 9, rank: rank)
        let m = RecursiveMixMethod(settings, batch: b, sample: (h, w, 3), classes: k, head: head ? .own(Linear("fc_roi", 6, k)) : .none)
        m.initialize(seed: 9)
        return m
    }

    private func batch(_ seed: UInt64) -> (Tensor, [Int]) {
        (Support.randomTensor([b, h, w, 3], seed: seed), (0..<b).map { Int(seed + UInt64($0)) % k })
    }

    /// Runs `steps` steps of mixing and remembering (logits from the targets), returning the records.
    private func run(_ m: MixingMethod, steps: Range<Int>) -> [MixRecord] {
        steps.map { s in
            let (x, y) = batch(UInt64(s))
            let t = Tensor(shape: [b, k])
            let r = m.mix(images: x, labels: y, targets: t, step: s)
            m.remember(images: x, targets: t, logits: t)
            return r
        }
    }

    func testNamedSumsRoundTripByNameAndReadTheLegacyArray() {
        var s = MixStatistics()
        s.mixedSteps = 3; s.consistency = 0.1 + 0.2; s.classesAbove1e2 = 7
        let entries = Dictionary(uniqueKeysWithValues: s.entries(prefix: "mix_sums").map { ($0.name, $0) })
        XCTAssertEqual(Set(entries.keys), Set(MixStatistics.fields.map { "mix_sums.\($0.name)" }))
        XCTAssertEqual(MixStatistics(entries: entries, prefix: "mix_sums"), s)
        // A counter the checkpoint lacks starts at 0; the others are kept exactly.
        var partial = entries
        partial["mix_sums.consistency"] = nil
        var expected = s
        expected.consistency = 0
        XCTAssertEqual(MixStatistics(entries: partial, prefix: "mix_sums"), expected)
        // Checkpoints before named sums: one positional array (12 floats for 6 doubles).
        let legacy = SafeTensors.Entry(name: "mix_sums", shape: [12], values: packDoubles(s.values))
        XCTAssertEqual(MixStatistics(entries: ["mix_sums": legacy], prefix: "mix_sums", legacy: MixStatistics.legacy), s)
        XCTAssertEqual((s + s).mixedSteps, 6)
    }

    func testRecursiveMixFirstStepPlainThenMixedWithItsOwnLossTerm() {
        let m = rm()
        m.startEpoch()
        let records = run(m, steps: 0..<4)
        XCTAssertFalse(records[0].mixed, "empty history: the first step of an epoch trains on the clean batch")
        XCTAssertTrue(records[1...].contains { $0.mixed && $0.kind == "rm" && $0.box != nil }, "\(records)")
        let mixed = records.filter(\.mixed).count
        XCTAssertEqual(m.statistics.mixedSteps, Double(mixed))
        XCTAssertEqual(m.statistics.targetRows, Double(4 * b))
        let r = records.last { $0.mixed }!
        let features = Support.randomTensor([b, 2, 2, 6], seed: 3)
        let aux = m.auxiliaryLoss(features: features, imageWidth: w, record: r)!
        XCTAssertEqual(aux.weight, 0.1 * (1 - r.lam), accuracy: 1e-15)
        XCTAssertGreaterThan(aux.value, 0)
        XCTAssertEqual(m.auxiliaryBackward(record: r)?.shape, features.shape)
        XCTAssertNil(m.auxiliaryLoss(features: features, imageWidth: w, record: records[0]))
        m.startEpoch()
        XCTAssertFalse(run(m, steps: 4..<5)[0].mixed, "per-epoch history is cleared at the epoch's start")
        XCTAssertEqual(m.report(m.statistics, worldSize: 1).map(\.key),
                       ["mixed_steps", "mean_hist_area", "consistency_loss", "effective_classes_1e-4", "effective_classes_1e-2"])
    }

    /// The state a checkpoint keeps is all the method needs: a restored copy mixes the next step alike.
    func testRecursiveMixStateRestoresTheNextStepExactly() throws {
        let a = rm(), c = rm()
        a.startEpoch(); c.startEpoch()
        _ = run(a, steps: 0..<3)
        let saved = Dictionary(uniqueKeysWithValues: a.state().map { ($0.name, $0) })
        try c.restore(saved, source: "test")
        XCTAssertEqual(c.statistics, a.statistics)
        let (x1, y) = batch(3), x2 = Tensor(shape: x1.shape, values: x1.array)
        let t1 = Tensor(shape: [b, k]), t2 = Tensor(shape: [b, k])
        XCTAssertEqual(a.mix(images: x1, labels: y, targets: t1, step: 3), c.mix(images: x2, labels: y, targets: t2, step: 3))
        XCTAssertEqual(x1.array, x2.array)
        XCTAssertEqual(t1.array, t2.array)
        XCTAssertThrowsError(try rm().restore([:], source: "old.rmck")) { e in
            XCTAssertEqual("\(e)", "old.rmck: no RecursiveMix history in the checkpoint")
        }
    }

    func testBoxesPerRankDifferAndSharedBoxesAgree() {
        let shared = [rm(), rm()].map { m -> [MixRecord] in m.startEpoch(); return run(m, steps: 0..<6) }
        XCTAssertEqual(shared[0], shared[1])
        let perRank = [rm(rank: 0), rm(rank: 1)].map { m -> [MixRecord] in m.startEpoch(); return run(m, steps: 0..<6) }
        XCTAssertNotEqual(perRank[0], perRank[1])
    }

    func testWithoutAHeadRecursiveMixStillMixesButHasNoLossTerm() {
        let m = rm(head: false)
        m.startEpoch()
        let r = run(m, steps: 0..<3).last!
        XCTAssertTrue(m.parameters.isEmpty)
        XCTAssertNil(m.auxiliaryLoss(features: Support.randomTensor([b, 2, 2, 6], seed: 1), imageWidth: w, record: r))
    }

    func testBatchMixAndNoMixingWriteTargetsAndCount() {
        let cutmix = BatchMixMethod(name: "cutmix", policy: MixPolicy(mixupAlpha: 0, cutmixAlpha: 1, labelSmoothing: 0),
                                    classes: k, seed: 4)
        let records = run(cutmix, steps: 0..<5)
        XCTAssertTrue(records.allSatisfy { $0.kind == "cutmix" || !$0.mixed })
        XCTAssertEqual(cutmix.statistics.mixedSteps, Double(records.filter(\.mixed).count))
        XCTAssertEqual(records, run(BatchMixMethod(name: "cutmix", policy: cutmix.mixer.policy, classes: k, seed: 4), steps: 0..<5))
        let none = NoMixing(classes: k)
        let t = Tensor(shape: [b, k])
        let (x, y) = batch(1)
        XCTAssertFalse(none.mix(images: x, labels: y, targets: t, step: 0).mixed)
        for i in 0..<b { XCTAssertEqual(t[i * k + y[i]], 1) }
        XCTAssertEqual(none.statistics.classesAbove1e2, Double(b))
        XCTAssertEqual(none.report(none.statistics, worldSize: 2).map(\.key), ["effective_classes_1e-4", "effective_classes_1e-2"])
    }
}
