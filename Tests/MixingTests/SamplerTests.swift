import XCTest
import Kernels
@testable import Mixing

/// Box and λ sampling: the §9 statistics, the draw order, CutMix boxes and the Beta sampler.
final class SamplerTests: XCTestCase {
    struct Stats { var meanHist = 0.0; var maxHist = 0.0; var noPaste = 0.0 }

    static func stats(size: Int, alpha: Double, draws: Int, seed: UInt64) -> Stats {
        var rng = RandomStream(seed: seed, stream: 0xB0C)
        var s = Stats(), sum = 0.0, empty = 0
        for _ in 0..<draws {
            let (box, lam) = BoxSampler.recursiveMix(width: size, height: size, alpha: alpha, rng: &rng)
            let hist = 1 - lam
            sum += hist
            s.maxHist = max(s.maxHist, hist)
            if box.isEmpty { empty += 1 }
        }
        s.meanHist = sum / Double(draws)
        s.noPaste = Double(empty) / Double(draws)
        return s
    }

    func testCifarStatistics() {
        let s = Self.stats(size: 32, alpha: 0.5, draws: 200_000, seed: 1)
        print("32 px α=0.5: E[1−lam] = \(s.meanHist), max = \(s.maxHist), P(no paste) = \(s.noPaste)")
        XCTAssertEqual(s.meanHist, 0.1663, accuracy: 0.003)
        XCTAssertEqual(s.noPaste, 0.0078, accuracy: 0.0015)      // exactly P(u < 1/256) = 0.0078125
        XCTAssertLessThanOrEqual(s.maxHist, 0.4727 + 1e-4)
        XCTAssertEqual(s.maxHist, 484.0 / 1024.0)                // side 22 = 2·(Int(32·√0.5) / 2), unclipped
    }

    func testImageNetStatistics() {
        let s = Self.stats(size: 224, alpha: 0.5, draws: 100_000, seed: 2)
        print("224 px α=0.5: E[1−lam] = \(s.meanHist), max = \(s.maxHist), P(no paste) = \(s.noPaste)")
        XCTAssertEqual(s.meanHist, 0.1817, accuracy: 0.003)
        XCTAssertLessThanOrEqual(s.maxHist, 0.4975 + 1e-4)
        XCTAssertLessThan(s.noPaste, 0.0006)                      // P(u < 4/224²) ≈ 0.00016
    }

    func testOtherAlphas() {
        let a = Self.stats(size: 32, alpha: 0.3, draws: 100_000, seed: 3)
        XCTAssertEqual(a.meanHist, 0.1034, accuracy: 0.003)
        XCTAssertEqual(a.maxHist, 0.25)                           // side 16 = 2·(Int(32·√0.3) / 2)
        XCTAssertEqual(a.noPaste, 0.0134, accuracy: 0.002)
        let b = Self.stats(size: 32, alpha: 1.0, draws: 100_000, seed: 4)
        XCTAssertEqual(b.meanHist, 0.2991, accuracy: 0.004)
    }

    /// One u, then cx, then cy; truncation, even side, clipping, λ from the clipped area.
    func testDrawOrderAndGeometry() {
        var rng = RandomStream(seed: 9, stream: 2)
        var replay = rng
        for _ in 0..<20_000 {
            let (box, lam) = BoxSampler.recursiveMix(width: 32, height: 32, alpha: 0.5, rng: &rng)
            let u = replay.uniform(0, 0.5)
            let cut = Int(32 * u.squareRoot())
            let cx = replay.int(below: 32), cy = replay.int(below: 32)
            let expected = Box(x1: max(0, cx - cut / 2), y1: max(0, cy - cut / 2),
                               x2: min(32, cx + cut / 2), y2: min(32, cy + cut / 2))
            XCTAssertEqual(box, expected)
            XCTAssertEqual(lam, 1 - Double(box.area) / 1024)
            XCTAssertEqual(box.isEmpty, box.area == 0)            // square images: both sides vanish together
            if box.isEmpty { XCTAssertEqual(lam, 1.0) }
            XCTAssertEqual(rng.state, replay.state)
        }
    }

    func testCutMixBoxAndCorrectedLam() {
        var rng = RandomStream(seed: 10)
        var replay = rng
        for k in 0..<5_000 {
            let lam0 = Double(k % 100) / 100
            let (box, lam) = BoxSampler.cutMix(width: 40, height: 24, lam: lam0, rng: &rng)
            let r = (1 - lam0).squareRoot()
            let ch = Int(24 * r), cw = Int(40 * r)
            let cy = replay.int(below: 24), cx = replay.int(below: 40)   // timm: cy first
            XCTAssertEqual(box, Box(x1: max(0, cx - cw / 2), y1: max(0, cy - ch / 2),
                                    x2: min(40, cx + cw / 2), y2: min(24, cy + ch / 2)))
            XCTAssertEqual(lam, 1 - Double(box.area) / 960)
        }
        let (_, raw) = BoxSampler.cutMix(width: 32, height: 32, lam: 0.37, correctLam: false, rng: &rng)
        XCTAssertEqual(raw, 0.37)
    }

    func testCutMixMinMaxInsideImage() {
        var rng = RandomStream(seed: 11)
        var sides = Set<Int>()
        for _ in 0..<5_000 {
            let (box, lam) = BoxSampler.cutMixMinMax(width: 32, height: 32, minRatio: 0.2, maxRatio: 0.8, rng: &rng)
            XCTAssertTrue(box.x1 >= 0 && box.y1 >= 0 && box.x2 <= 32 && box.y2 <= 32, "\(box)")
            XCTAssertTrue((6..<25).contains(box.width) && (6..<25).contains(box.height), "\(box)")
            XCTAssertEqual(lam, 1 - Double(box.area) / 1024)
            sides.insert(box.width)
        }
        XCTAssertEqual(sides, Set(6..<25))
    }

    /// With a 16-px side on 32 px the corner takes each of 0...16 about equally often (timm's exclusive
    /// draw never gives 16, so no box would touch the last row or column), in both directions.
    func testCutMixMinMaxCornerDistribution() {
        var rng = RandomStream(seed: 13)
        var xs = [Int](repeating: 0, count: 17), ys = [Int](repeating: 0, count: 17)
        let n = 17_000
        for _ in 0..<n {
            let (box, _) = BoxSampler.cutMixMinMax(width: 32, height: 32, minRatio: 0.5, maxRatio: 0.54, rng: &rng)
            XCTAssertEqual(box.width, 16)
            XCTAssertEqual(box.height, 16)
            xs[box.x1] += 1
            ys[box.y1] += 1
        }
        for counts in [xs, ys] {
            // Each of 17 positions expects 1000 draws (sd ≈ 31): a missing or doubled position fails.
            XCTAssertTrue(counts.allSatisfy { (850...1150).contains($0) }, "\(counts)")
        }
    }

    /// Beta(α, α): mean 1/2, variance 1/(4(2α+1)); values in [0, 1]; deterministic given the stream.
    func testBetaMoments() {
        for alpha in [0.2, 0.4, 1.0, 2.0, 5.0] {
            var rng = RandomStream(seed: 12, stream: UInt64(alpha * 10))
            let n = 100_000
            var s = 0.0, s2 = 0.0
            for _ in 0..<n {
                let v = BoxSampler.betaSample(alpha: alpha, rng: &rng)
                XCTAssertTrue(v >= 0 && v <= 1)
                s += v; s2 += v * v
            }
            let mean = s / Double(n), variance = s2 / Double(n) - mean * mean
            let expected = 1 / (4 * (2 * alpha + 1))
            XCTAssertEqual(mean, 0.5, accuracy: 0.006, "α = \(alpha)")
            XCTAssertEqual(variance / expected, 1, accuracy: 0.03, "α = \(alpha): variance \(variance) vs \(expected)")
        }
        var a = RandomStream(seed: 3), b = RandomStream(seed: 3)
        for _ in 0..<100 { XCTAssertEqual(BoxSampler.betaSample(alpha: 0.4, rng: &a), BoxSampler.betaSample(alpha: 0.4, rng: &b)) }
    }

    /// Gamma(a) has mean a and variance a, also below 1 (the boost path).
    func testGammaMoments() {
        for a in [0.3, 1.0, 3.5] {
            var rng = RandomStream(seed: 13, stream: UInt64(a * 10))
            let n = 100_000
            var s = 0.0, s2 = 0.0
            for _ in 0..<n { let v = BoxSampler.gammaSample(shape: a, rng: &rng); s += v; s2 += v * v }
            let mean = s / Double(n), variance = s2 / Double(n) - mean * mean
            XCTAssertEqual(mean / a, 1, accuracy: 0.02, "shape \(a)")
            XCTAssertEqual(variance / a, 1, accuracy: 0.05, "shape \(a)")
        }
    }
}
