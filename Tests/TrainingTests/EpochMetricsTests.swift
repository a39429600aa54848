import XCTest
import Kernels
@testable import Training

/// The per-epoch metrics: what a metric counts from a step, and counters that survive a checkpoint by name.
final class EpochMetricsTests: XCTestCase {
    private func outputs(_ rows: [[Float]], _ labels: [Int]) -> StepOutputs {
        let k = rows[0].count
        let logits = Tensor(shape: [rows.count, k], values: rows.flatMap { $0 })
        return StepOutputs(logits: logits, labels: labels, targets: Tensor(shape: [rows.count, k]))
    }

    func testTrainTop5CountsLabelsAmongTheFiveHighestLogits() {
        var m = EpochMetrics([TrainTop5()])
        let sixClasses: [Float] = [6, 5, 4, 3, 2, 1]
        // label 4 is 5th (in), label 5 is 6th (out), a tie with the 5th counts in.
        m.observe(outputs([sixClasses, sixClasses, [1, 1, 1, 1, 1, 1]], [4, 5, 0]))
        XCTAssertEqual(m.sums, [2, 3])
        XCTAssertEqual(m.report(m.sums).map(\.key), ["train_top5"])
        XCTAssertEqual(m.report([6, 8])[0].value, 0.75)
        m.reset()
        XCTAssertEqual(m.sums, [0, 0])
    }

    /// One tie rule for every top-k figure: ties go to the lower class index (torch.argmax / torch.topk), a
    /// NaN outranks numbers, a NaN at the label is a miss; train_top1, train_top5 and val_top1/5 agree.
    func testOneTieRuleForEveryTopK() {
        let rows: [[Float]] = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1], [3, 3, 0, 0, 0, 0, 0],
                               [.nan, 2, 0, 0, 0, 0, 0], [0, .nan, 0, 0, 0, 0, 0]]
        let labels = [0, 6, 1, 1, 1]
        let ranks = rows.enumerated().map { i, r in r.withUnsafeBufferPointer { labelRank(label: labels[i], in: $0.baseAddress!, classes: 7) } }
        XCTAssertEqual(ranks, [0, 6, 1, 1, 7])
        let o = outputs(rows, labels)
        XCTAssertEqual(countTop1(o.logits, labels), 1)
        var m = EpochMetrics([TrainTop5()])
        m.observe(o)
        XCTAssertEqual(m.sums, [3, 5])
        var e = EvalCounts()
        e.add(logits: o.logits, labels: labels)
        XCTAssertEqual([e.top1, e.top5], [1, 3])
    }

    func testCountersRoundTripByNameAndStartAtZeroWhenMissing() {
        var m = EpochMetrics([TrainTop5()])
        m.observe(outputs([[6, 5, 4, 3, 2, 1, 0], [6, 5, 4, 3, 2, 1, 0]], [0, 6]))
        XCTAssertEqual(m.sums, [1, 2])
        var saved = Dictionary(uniqueKeysWithValues: m.entries().map { ($0.name, $0) })
        XCTAssertEqual(Set(saved.keys), ["metric.top5_hits", "metric.top5_images"])
        var back = EpochMetrics([TrainTop5()])
        back.restore(saved)
        XCTAssertEqual(back.sums, m.sums)
        saved["metric.top5_images"] = nil          // a checkpoint from before the metric existed
        back.restore(saved)
        XCTAssertEqual(back.sums, [1, 0])
    }
}
