import Foundation
import XCTest

enum TestFolders {
    static let cifar10 = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../shared/data/cifar10").standardized.path

    /// `classes` classes, `perClass` training and 2 test images each, removed when `test` ends.
    static func cifar(classes: Int, perClass: Int, test: XCTestCase) throws -> String {
        let fm = FileManager.default
        guard fm.fileExists(atPath: cifar10) else { throw TestSetupError("\(cifar10) not present: tests read ../shared/data") }
        let dir = NSTemporaryDirectory() + "cifar-\(UUID().uuidString)"
        test.addTeardownBlock { try? fm.removeItem(atPath: dir) }
        for (split, n) in [("train", perClass), ("test", 2)] {
            for c in try fm.contentsOfDirectory(atPath: "\(cifar10)/\(split)").sorted().prefix(classes) {
                try fm.createDirectory(atPath: "\(dir)/\(split)/\(c)", withIntermediateDirectories: true)
                for f in try fm.contentsOfDirectory(atPath: "\(cifar10)/\(split)/\(c)").sorted().prefix(n) {
                    try fm.copyItem(atPath: "\(cifar10)/\(split)/\(c)/\(f)", toPath: "\(dir)/\(split)/\(c)/\(f)")
                }
            }
        }
        return dir
    }
}

/// A missing test prerequisite is a failure, never a skip.
struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
