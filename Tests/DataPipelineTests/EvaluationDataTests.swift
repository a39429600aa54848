import Foundation
import XCTest
import Kernels
@testable import DataPipeline

/// `EvaluationData`: the evaluation split labelled by a model's class names, whatever the folder's order.
final class EvaluationDataTests: XCTestCase {
    /// A model whose classes are in another order than the folder's sorted names (a checkpoint trained on
    /// data that numbers its classes otherwise): each image gets the model's index of its folder's name, the
    /// pixels are the folder's own, and a folder without `train/` is enough.
    func testPermutedClassNamesAreMatchedByName() throws {
        let dir = try TestData.smallFolder(try TestData.tempDir("evaldata"), classes: 3, perClass: 2)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plain = try openData("imagefolder:" + dir, options: { var o = DataOptions(); o.imageSize = 16; return o }())
        let names = plain.val.classNames
        let permuted = [names[2], names[0], names[1]]
        try FileManager.default.removeItem(atPath: dir + "/train")
        var options = DataOptions()
        options.imageSize = 16
        let (val, _) = try EvaluationData.open("imagefolder:" + dir, options: options, classNames: permuted)
        XCTAssertEqual(val.classNames, permuted)
        XCTAssertEqual(val.count, plain.val.count)
        for i in 0..<val.count {
            XCTAssertEqual(permuted[val.label(i)], names[plain.val.label(i)], "image \(i)")
            XCTAssertEqual(try TestData.sample(val, i, augment: false), try TestData.sample(plain.val, i, augment: false))
        }
    }

    /// Data sets other than image folders are renumbered by `ClassMappedDataset`; a class the model does not
    /// know is one error naming it and the model's classes.
    func testClassMappedDatasetAndUnknownClasses() throws {
        let dir = try TestData.smallFolder(try TestData.tempDir("evalmap"), classes: 2, perClass: 2)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let base = try openData("imagefolder:" + dir).val
        let names = base.classNames
        let mapped = try ClassMappedDataset(base, classNames: ["other", names[1], names[0]])
        XCTAssertEqual(mapped.numClasses, 3)
        for i in 0..<base.count { XCTAssertEqual(mapped.label(i), 2 - base.label(i)) }
        XCTAssertThrowsError(try ClassMappedDataset(base, classNames: [names[0], "other"])) { e in
            XCTAssertTrue("\(e)".contains("class \(names[1]) that the checkpoint does not know (its 2 classes: \(names[0]), other)"), "\(e)")
        }
        XCTAssertThrowsError(try EvaluationData.open("imagefolder:" + dir, options: DataOptions(), classNames: [names[1]])) { e in
            XCTAssertTrue("\(e)".contains("class \(names[0]) that the checkpoint does not know"), "\(e)")
        }
    }
}
