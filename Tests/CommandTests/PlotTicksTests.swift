import XCTest
@testable import rmtrain

/// `plot`'s grid lines sit at round values and their labels print those values exactly (a label of "2.0" on a
/// line drawn at 1.97 misreads every curve by the difference).
final class PlotTicksTests: XCTestCase {
    func testTicksAreRoundAndLabelledExactly() {
        let loss = PlotCommand.ticks(1.89, 2.71)
        XCTAssertEqual(loss.values.map { ($0 * 10).rounded() / 10 }, [2.0, 2.2, 2.4, 2.6])
        XCTAssertEqual(loss.values.map { PlotCommand.label($0, decimals: loss.decimals) }, ["2.0", "2.2", "2.4", "2.6"])
        let lr = PlotCommand.ticks(0, 0.105)
        XCTAssertEqual(lr.values.map { PlotCommand.label($0, decimals: lr.decimals) }, ["0", "0.02", "0.04", "0.06", "0.08", "0.10"])
        let top1 = PlotCommand.ticks(0, 100)
        XCTAssertEqual(top1.values.map { PlotCommand.label($0, decimals: top1.decimals) }, ["0", "20", "40", "60", "80", "100"])
        for (lo, hi) in [(0.0, 1e-4), (3.3, 3.31), (-1.0, 7.0)] {
            let t = PlotCommand.ticks(lo, hi)
            XCTAssertGreaterThanOrEqual(t.values.count, 2, "\(lo)...\(hi)")
            for v in t.values {
                XCTAssertTrue(v >= lo - 1e-12 && v <= hi + 1e-12)
                XCTAssertEqual(Double(PlotCommand.label(v, decimals: t.decimals)) ?? .nan, v, accuracy: abs(v) * 1e-9 + 1e-15)
            }
        }
    }
}
