/// Convolution weights between torchvision's layout [O, I, kh, kw] (OIHW) and ours [O, kh, kw, I] (OHWI,
/// channels_last): `rmtrain export` writes the one, `--init-weights` reads it back.
public enum ConvLayout {
    /// [O, kh, kw, I] → [O, I, kh, kw]; `shape` is the OHWI shape.
    public static func oihw(fromOHWI v: [Float], shape s: [Int]) -> [Float] {
        permute(v, o: s[0], i: s[3], kh: s[1], kw: s[2], toOIHW: true)
    }

    /// [O, I, kh, kw] → [O, kh, kw, I]; `shape` is the OIHW shape.
    public static func ohwi(fromOIHW v: [Float], shape s: [Int]) -> [Float] {
        permute(v, o: s[0], i: s[1], kh: s[2], kw: s[3], toOIHW: false)
    }

    private static func permute(_ v: [Float], o: Int, i: Int, kh: Int, kw: Int, toOIHW: Bool) -> [Float] {
        var r = [Float](repeating: 0, count: v.count)
        for a in 0..<o { for c in 0..<i { for y in 0..<kh { for x in 0..<kw {
            let oihw = ((a * i + c) * kh + y) * kw + x, ohwi = ((a * kh + y) * kw + x) * i + c
            if toOIHW { r[oihw] = v[ohwi] } else { r[ohwi] = v[oihw] }
        } } } }
        return r
    }
}
