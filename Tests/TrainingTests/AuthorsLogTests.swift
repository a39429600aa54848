import XCTest
@testable import Training

/// The RecursiveMix code's log (main.py's lines) read as data: training and evaluation lines parsed, its other
/// lines skipped by name, anything else refused on its line number.
final class AuthorsLogTests: XCTestCase {
    /// Lines in the format of their published logs (log_cifar10_300epoch_pyramidnet_rm_*.log), written here.
    static let sample = """
        2021-12-09 13:12:01,000 - INFO - --lr 0.25
        2021-12-09 13:12:03,858 - INFO - Epoch [1/300][0/782]\tlr 0.041667\tLoss 2.3001 (2.3001)\tAcc@1 0.0781 (0.0781)\tAcc@5 0.5312 (0.5312)
        2021-12-09 13:12:35,934 - INFO - Epoch [1/300][100/782]\tlr 0.041667\tLoss 2.0046 (2.1948)\tAcc@1 0.2812 (0.2076)\tAcc@5 0.8594 (0.7124)
        2021-12-09 13:16:18,399 - INFO - Epoch(val) [1/300][0/157]\tAcc@1 0.5312 (0.5312)\tAcc@5 0.8906 (0.8906)
        2021-12-09 13:16:30,986 - INFO - Epoch(val) [1]\tTest Acc@1: 0.4911\tTest Acc@5: 0.9295\tBest Acc@1: 0.4911\tBest Acc@5: 0.9295\tCopypaste: 0.4911, 0.9295
        2021-12-09 13:16:30,986 - INFO - Exp path: ./logs/cifar10/cifar10_e300_pyramidnet_200_240_roi_rc_v2_w1_r05_loss1_01

        Epoch [2/300][0/782]\tlr 0.083333\tLoss 1.2780 (1.2780)\tAcc@1 0.4688 (0.4688)\tAcc@5 0.9375 (0.9375)

        """

    func testReadsTrainingAndEvaluationLines() throws {
        let log = try AuthorsLog(Self.sample, name: "their.log")
        XCTAssertEqual(log.iterations, [
            .init(epoch: 1, epochs: 300, iteration: 0, iterations: 782, lr: 0.041667, loss: 2.3001, top1: 0.0781, top5: 0.5312),
            .init(epoch: 1, epochs: 300, iteration: 100, iterations: 782, lr: 0.041667, loss: 2.1948, top1: 0.2076, top5: 0.7124),
            .init(epoch: 2, epochs: 300, iteration: 0, iterations: 782, lr: 0.083333, loss: 1.2780, top1: 0.4688, top5: 0.9375),
        ])
        XCTAssertEqual(log.iterations.map(\.global), [0, 100, 782])
        XCTAssertEqual(log.evaluations, [.init(epoch: 1, top1: 0.4911, top5: 0.9295)])
    }

    /// A line of another format stops the read, naming the file and the line's number.
    func testRefusesAnUnknownLineByNumber() {
        var lines = Self.sample.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[2] = "2021-12-09 13:12:35,934 - INFO - Epoch [1/300][100/782]\tlr 0.041667\tLoss 2.0046 2.1948\tAcc@1 0.2812 (0.2076)"
        XCTAssertThrowsError(try AuthorsLog(lines.joined(separator: "\n"), name: "their.log")) { e in
            XCTAssertTrue("\(e)".hasPrefix("their.log line 3: not a line of the RecursiveMix code's log"), "\(e)")
        }
        lines = ["Epoch [1/300][0/782]\tlr 0.04\tLoss 2.3 (2.3)\tAcc@1 0.07 (0.07)\tAcc@5 0.5 (0.5)", "Traceback (most recent call last):"]
        XCTAssertThrowsError(try AuthorsLog(lines.joined(separator: "\n"), name: "x.log")) { e in
            XCTAssertTrue("\(e)".hasPrefix("x.log line 2: "), "\(e)")
        }
        XCTAssertThrowsError(try AuthorsLog("2021-12-09 13:16:30,986 - INFO - Exp path: ./logs\n", name: "y.log")) { e in
            XCTAssertTrue("\(e)".hasPrefix("y.log: no training line"), "\(e)")
        }
    }
}
