import Kernels

/// An 8-bit RGB canvas for small diagnostic pictures (a mixed batch with its boxes, label weights and λ):
/// images from NHWC tensors (un-normalised back to pixels), rectangle outlines, and 5×7 bitmap text.
/// Everything clips to the canvas, so labels may run off an edge safely.
public struct Canvas: Sendable {
    public struct RGB: Equatable, Sendable {
        public var r: UInt8, g: UInt8, b: UInt8
        public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }
        public static let black = RGB(0, 0, 0), white = RGB(255, 255, 255)
        public static let red = RGB(230, 40, 40), green = RGB(40, 200, 60), yellow = RGB(250, 220, 40)
    }

    public let width: Int, height: Int
    /// Row-major RGB bytes, `width·height·3`.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, background: RGB = .white) {
        precondition(width > 0 && height > 0)
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        fill(x: 0, y: 0, width: width, height: height, color: background)
    }

    public subscript(x: Int, y: Int) -> RGB {
        get { let i = (y * width + x) * 3; return RGB(pixels[i], pixels[i + 1], pixels[i + 2]) }
        set { set(x, y, newValue) }
    }

    @inline(__always)
    public mutating func set(_ x: Int, _ y: Int, _ c: RGB) {
        guard x >= 0 && x < width && y >= 0 && y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.r; pixels[i + 1] = c.g; pixels[i + 2] = c.b
    }

    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, color: RGB) {
        for yy in max(0, y)..<max(max(0, y), min(height, y + h)) {
            for xx in max(0, x)..<max(max(0, x), min(width, x + w)) { set(xx, yy, color) }
        }
    }

    /// A one-pixel-wide (times `thickness`) outline just inside the rectangle [x, x+w) × [y, y+h).
    public mutating func outline(x: Int, y: Int, width w: Int, height h: Int, color: RGB, thickness: Int = 1) {
        fill(x: x, y: y, width: w, height: thickness, color: color)
        fill(x: x, y: y + h - thickness, width: w, height: thickness, color: color)
        fill(x: x, y: y, width: thickness, height: h, color: color)
        fill(x: x + w - thickness, y: y, width: thickness, height: h, color: color)
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel a `scale`×`scale` square.
    public mutating func drawText(_ text: String, x: Int, y: Int, scale: Int = 1, color: RGB = .black) {
        precondition(scale >= 1)
        var cx = x
        for ch in text {
            for col in 0..<BitmapFont.glyphWidth {
                let bits = BitmapFont.columns(ch)[col]
                for row in 0..<BitmapFont.glyphHeight where (bits >> UInt8(row)) & 1 == 1 {
                    fill(x: cx + col * scale, y: y + row * scale, width: scale, height: scale, color: color)
                }
            }
            cx += BitmapFont.advance * scale
        }
    }

    /// Draws image `index` of an NHWC tensor (1 or 3 channels, normalised as `(v − mean)/std`) at (x, y),
    /// each image pixel a `scale`×`scale` square: pixel = clamp(round((v·std + mean)·255)). Grey images are
    /// drawn as grey RGB. Pass mean 0 / std 1 for tensors already in [0, 1].
    public mutating func drawImage(_ t: Tensor, index: Int, x: Int, y: Int, scale: Int = 1,
                                   mean: [Float] = [0], std: [Float] = [1]) {
        precondition(t.shape.count == 4 && (t.c == 1 || t.c == 3), "drawImage expects NHWC with 1 or 3 channels")
        precondition(index >= 0 && index < t.n)
        let c = t.c, h = t.h, w = t.w
        func byte(_ v: Float, _ ch: Int) -> UInt8 {
            let m = mean[min(ch, mean.count - 1)], s = std[min(ch, std.count - 1)]
            let p = ((v * s + m) * 255).rounded()
            return UInt8(min(max(p, 0), 255))
        }
        let base = t.data + index * h * w * c
        for iy in 0..<h {
            for ix in 0..<w {
                let p = base + (iy * w + ix) * c
                let color = c == 3 ? RGB(byte(p[0], 0), byte(p[1], 1), byte(p[2], 2))
                                   : { let g = byte(p[0], 0); return RGB(g, g, g) }()
                fill(x: x + ix * scale, y: y + iy * scale, width: scale, height: scale, color: color)
            }
        }
    }

    /// Outlines a pixel box of an image drawn at (x, y) with `scale`.
    /// A straight line (Bresenham), `thickness` pixels wide.
    public mutating func drawLine(x0: Int, y0: Int, x1: Int, y1: Int, color: RGB, thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        let half = thickness / 2
        while true {
            fill(x: x - half, y: y - half, width: thickness, height: thickness, color: color)
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    /// (x1, y1) inclusive, (x2, y2) exclusive, in image pixels.
    public mutating func drawBox(x1: Int, y1: Int, x2: Int, y2: Int, imageX x: Int, imageY y: Int, scale: Int = 1,
                                 color: RGB = .red) {
        guard x2 > x1 && y2 > y1 else { return }
        outline(x: x + x1 * scale, y: y + y1 * scale, width: (x2 - x1) * scale, height: (y2 - y1) * scale, color: color)
    }

    /// The picture as a PNG file's bytes (TensorBoard images).
    public func pngData() throws -> [UInt8] {
        try PNGImage.encode(pixels: pixels, width: width, height: height, channels: 3)
    }

    public func writePNG(to path: String) throws {
        try PNGImage.write(pixels: pixels, width: width, height: height, channels: 3, to: path)
    }
}
