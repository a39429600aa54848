import ArgumentParser
import Foundation
import Imaging
import Training

/// `rmtrain plot RUN_DIR… --out curves.png`: training loss, validation top-1 and learning rate against
/// epochs, one colour per run, side by side, from each run's metrics.jsonl.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot", abstract: "Plot loss, top-1 and learning rate of one or several runs (PNG).")

    @Argument(help: "Run directories (each with metrics.jsonl).") var runs: [String]
    @Option(help: "Output PNG.") var out = "curves.png"

    struct Series { let name: String; let epochs: [Double]; let values: [String: [Double]] }

    static let palette: [Canvas.RGB] = [.init(31, 119, 180), .init(214, 39, 40), .init(44, 160, 44),
                                        .init(255, 127, 14), .init(148, 103, 189), .init(140, 86, 75)]

    func validate() throws { if runs.isEmpty { throw ValidationError("give at least one run directory") } }

    func run() throws {
        let series = try runs.map(load)
        let panels: [(key: String, title: String, scale: Double)] = [
            ("train_loss", "training loss", 1), ("val_top1", "validation top-1 (%)", 100), ("lr", "learning rate", 1)]
        let pw = 420, ph = 300, margin = 60, legendH = 22 * series.count + 14
        var canvas = Canvas(width: panels.count * (pw + margin) + margin, height: ph + 2 * margin + legendH)
        for (i, panel) in panels.enumerated() {
            let x0 = margin + i * (pw + margin), y0 = margin
            drawPanel(&canvas, x0: x0, y0: y0, w: pw, h: ph, title: panel.title, series: series,
                      key: panel.key, scale: panel.scale)
        }
        for (i, s) in series.enumerated() {
            let y = ph + margin + 44 + 22 * i
            let color = Self.palette[i % Self.palette.count]
            canvas.fill(x: margin, y: y + 4, width: 30, height: 6, color: color)
            let last = s.values["val_top1"]?.last.map { String(format: "   final top-1 %.2f%%", 100 * $0) } ?? ""
            canvas.drawText(s.name + last, x: margin + 40, y: y, scale: 2)
        }
        try canvas.writePNG(to: out)
        writeLine("rmtrain: wrote \(out) (\(canvas.width)×\(canvas.height)), \(series.count) run(s)")
    }

    func load(_ dir: String) throws -> Series {
        let path = (dir as NSString).appendingPathComponent("metrics.jsonl")
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TrainingError("plot: cannot read \(path)")
        }
        var byEpoch: [Int: [String: Double]] = [:]
        for (n, line) in text.split(separator: "\n").enumerated() {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let epoch = obj["epoch"] as? Int else {
                throw TrainingError("plot: \(path) line \(n + 1) is not a metrics record")
            }
            // A resumed run may log an epoch twice: the later line wins.
            byEpoch[epoch] = obj.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
        guard !byEpoch.isEmpty else { throw TrainingError("plot: \(path) has no records") }
        let epochs = byEpoch.keys.sorted()
        var values: [String: [Double]] = [:]
        for key in ["train_loss", "val_top1", "lr"] { values[key] = epochs.map { byEpoch[$0]?[key] ?? .nan } }
        let name = (dir as NSString).standardizingPath.split(separator: "/").last.map(String.init) ?? dir
        return Series(name: name, epochs: epochs.map(Double.init), values: values)
    }

    func drawPanel(_ c: inout Canvas, x0: Int, y0: Int, w: Int, h: Int, title: String, series: [Series],
                   key: String, scale: Double) {
        let gray = Canvas.RGB(200, 200, 200), dark = Canvas.RGB(60, 60, 60)
        let xs = series.flatMap(\.epochs), ys = series.flatMap { $0.values[key] ?? [] }.filter(\.isFinite).map { $0 * scale }
        let xMin = 0.0, xMax = max(xs.max() ?? 1, 1)
        var yMin = ys.min() ?? 0, yMax = ys.max() ?? 1
        if key != "train_loss" { yMin = min(yMin, 0) }
        if yMax - yMin < 1e-12 { yMax = yMin + 1 }
        let pad = (yMax - yMin) * 0.05
        yMin = key == "train_loss" ? max(0, yMin - pad) : yMin
        yMax += pad
        func px(_ x: Double) -> Int { x0 + Int((x - xMin) / (xMax - xMin) * Double(w)) }
        func py(_ y: Double) -> Int { y0 + h - Int((y - yMin) / (yMax - yMin) * Double(h)) }
        c.drawText(title, x: x0, y: y0 - 26, scale: 2)
        // Grid lines at round values, each labelled exactly (a label must name the value its line is drawn at).
        let (ticks, decimals) = Self.ticks(yMin, yMax)
        for yv in ticks {
            let yy = py(yv), text = Self.label(yv, decimals: decimals)
            c.drawLine(x0: x0, y0: yy, x1: x0 + w, y1: yy, color: gray)
            c.drawText(text, x: x0 - BitmapFont.textWidth(text) - 6, y: yy - 3, color: dark)
        }
        // Epoch ticks on whole epochs.
        let step = max(1, Int((xMax / 5).rounded(.up)))
        for e in stride(from: 0, through: Int(xMax), by: step) {
            let xx = px(Double(e))
            c.drawLine(x0: xx, y0: y0, x1: xx, y1: y0 + h, color: gray)
            c.drawText("\(e)", x: xx - BitmapFont.textWidth("\(e)") / 2, y: y0 + h + 8, color: dark)
        }
        c.drawText("epoch", x: x0 + w / 2 - 15, y: y0 + h + 22, color: dark)
        c.outline(x: x0, y: y0, width: w + 1, height: h + 1, color: dark)
        for (i, s) in series.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            let points = zip(s.epochs, s.values[key] ?? []).filter { $0.1.isFinite }.map { (px($0.0), py($0.1 * scale)) }
            for (a, b) in zip(points, points.dropFirst()) { c.drawLine(x0: a.0, y0: a.1, x1: b.0, y1: b.1, color: color, thickness: 2) }
            for p in points { c.fill(x: p.0 - 2, y: p.1 - 2, width: 5, height: 5, color: color) }
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
    }}
