import ArgumentParser
import Foundation
import Imaging
import Training

/// `rmtrain plot RUN_DIR|LOG… --out curves.png`: training loss, validation top-1 and learning rate against
/// epochs, one colour per source, side by side, from each run's metrics.jsonl or from a log of the RecursiveMix
/// code (`AuthorsLog`). When a source has per-iteration rows (a run's iterations.jsonl, written with
/// --log-interval, or the log's `Epoch [e/E][i/N]` lines), a second row draws the running loss and train top-1
/// against the iteration counted from the run's start, so that our run and theirs compare point for point.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot", abstract: "Plot loss, top-1 and learning rate of runs and of the RecursiveMix code's logs (PNG).")

    @Argument(help: "Run directories (metrics.jsonl; iterations.jsonl when run with --log-interval) or log files of the RecursiveMix code (main.py's 'Epoch [e/E][i/N] … Loss … Acc@1 …' and 'Epoch(val) [e] Test Acc@1: …' lines).")
    var runs: [String]
    @Option(help: "Output PNG.") var out = "curves.png"

    /// A panel: the curves' key, title, scale of the values, and whether its x axis is iterations.
    typealias Panel = (key: String, title: String, scale: Double, iterations: Bool)

    static let palette: [Canvas.RGB] = [.init(31, 119, 180), .init(214, 39, 40), .init(44, 160, 44),
                                        .init(255, 127, 14), .init(148, 103, 189), .init(140, 86, 75)]

    func validate() throws { if runs.isEmpty { throw ValidationError("give at least one run directory or log") } }

    func run() throws {
        let series = try runs.map(PlotSeries.load)
        var rows: [[Panel]] = [[("train_loss", "training loss", 1, false), ("val_top1", "validation top-1 (%)", 100, false),
                                ("lr", "learning rate", 1, false)]]
        if series.contains(where: { !$0.iterations.isEmpty }) {
            rows.append([("train_loss", "running training loss", 1, true), ("train_top1", "running train top-1 (%)", 100, true)])
        }
        let pw = 420, ph = 300, margin = 60, legendH = 22 * series.count + 14, rowH = ph + 2 * margin
        var canvas = Canvas(width: 3 * (pw + margin) + margin, height: rows.count * rowH + legendH)
        for (r, panels) in rows.enumerated() {
            for (i, panel) in panels.enumerated() {
                drawPanel(&canvas, x0: margin + i * (pw + margin), y0: margin + r * rowH, w: pw, h: ph, panel: panel, series: series)
            }
        }
        for (i, s) in series.enumerated() {
            let y = rows.count * rowH - margin + 44 + 22 * i
            let color = Self.palette[i % Self.palette.count]
            canvas.fill(x: margin, y: y + 4, width: 30, height: 6, color: color)
            let last = s.values["val_top1"]?.last(where: \.isFinite).map { String(format: "   final top-1 %.2f%%", 100 * $0) } ?? ""
            canvas.drawText(s.name + last, x: margin + 40, y: y, scale: 2)
        }
        try canvas.writePNG(to: out)
        let perIteration = series.filter { !$0.iterations.isEmpty }.count
        writeLine("rmtrain: wrote \(out) (\(canvas.width)×\(canvas.height)), \(series.count) run(s)"
                  + (perIteration > 0 ? ", \(perIteration) with per-iteration running means" : ""))
    }

    func drawPanel(_ c: inout Canvas, x0: Int, y0: Int, w: Int, h: Int, panel: Panel, series: [PlotSeries]) {
        let gray = Canvas.RGB(200, 200, 200), dark = Canvas.RGB(60, 60, 60)
        let curves: [[(x: Double, y: Double)]] = series.map { s in
            let (xs, ys) = panel.iterations ? (s.iterations, s.iterationValues[panel.key] ?? []) : (s.epochs, s.values[panel.key] ?? [])
            return zip(xs, ys).filter { $0.1.isFinite }.map { ($0.0, $0.1 * panel.scale) }
        }
        let isLoss = panel.key == "train_loss"
        let xs = curves.flatMap { $0.map(\.x) }, ys = curves.flatMap { $0.map(\.y) }
        let xMin = 0.0, xMax = max(xs.max() ?? 1, 1)
        var yMin = ys.min() ?? 0, yMax = ys.max() ?? 1
        if !isLoss { yMin = min(yMin, 0) }
        if yMax - yMin < 1e-12 { yMax = yMin + 1 }
        let pad = (yMax - yMin) * 0.05
        yMin = isLoss ? max(0, yMin - pad) : yMin
        yMax += pad
        func px(_ x: Double) -> Int { x0 + Int((x - xMin) / (xMax - xMin) * Double(w)) }
        func py(_ y: Double) -> Int { y0 + h - Int((y - yMin) / (yMax - yMin) * Double(h)) }
        c.drawText(panel.title, x: x0, y: y0 - 26, scale: 2)
        // Grid lines at round values, each labelled exactly (a label must name the value its line is drawn at).
        let (ticks, decimals) = Self.ticks(yMin, yMax)
        for yv in ticks {
            let yy = py(yv), text = Self.label(yv, decimals: decimals)
            c.drawLine(x0: x0, y0: yy, x1: x0 + w, y1: yy, color: gray)
            c.drawText(text, x: x0 - BitmapFont.textWidth(text) - 6, y: yy - 3, color: dark)
        }
        // Epoch ticks on whole epochs; iteration ticks at round values.
        let step = max(1, Int((xMax / 5).rounded(.up)))
        let xTicks = panel.iterations ? Self.ticks(0, xMax).values.map { Int($0.rounded()) } : Array(stride(from: 0, through: Int(xMax), by: step))
        for t in xTicks {
            let xx = px(Double(t))
            c.drawLine(x0: xx, y0: y0, x1: xx, y1: y0 + h, color: gray)
            c.drawText("\(t)", x: xx - BitmapFont.textWidth("\(t)") / 2, y: y0 + h + 8, color: dark)
        }
        let xName = panel.iterations ? "iteration" : "epoch"
        c.drawText(xName, x: x0 + w / 2 - BitmapFont.textWidth(xName) / 2, y: y0 + h + 22, color: dark)
        c.outline(x: x0, y: y0, width: w + 1, height: h + 1, color: dark)
        for (i, curve) in curves.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            let points = curve.map { (px($0.x), py($0.y)) }
            for (a, b) in zip(points, points.dropFirst()) { c.drawLine(x0: a.0, y0: a.1, x1: b.0, y1: b.1, color: color, thickness: 2) }
            // Markers while they stay apart (a 300-epoch log has thousands of iteration rows).
            if !panel.iterations || points.count <= w / 6 { for p in points { c.fill(x: p.0 - 2, y: p.1 - 2, width: 5, height: 5, color: color) } }
        }
    }

    /// About `n` ticks in [lo, hi] at a step of 1, 2 or 5 × 10^k, and the decimals that print that step exactly.
    static func ticks(_ lo: Double, _ hi: Double, about n: Double = 4) -> (values: [Double], decimals: Int) {
        let raw = max((hi - lo) / n, 1e-12)
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let span = max(hi - lo, 1e-12)
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.min { abs(span / $0 - n) < abs(span / $1 - n) }!
        let first = (lo / step).rounded(.up)
        let values = (0..<64).map { (first + Double($0)) * step }.filter { $0 <= hi + step * 1e-9 }
        return (values, max(0, -Int((log10(step) + 1e-9).rounded(.down))))
    }

    static func label(_ v: Double, decimals: Int) -> String {
        if abs(v) < 1e-12 { return "0" }
        return decimals > 6 ? String(format: "%.1e", v) : String(format: "%.\(decimals)f", v)
    }
}
