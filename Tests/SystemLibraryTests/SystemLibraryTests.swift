import XCTest
import CMPI
import COpenBLAS
import CTurboJPEG
import CZlib
import CZstd

/// The C libraries link and answer: the module maps and shims are right.
final class SystemLibraryTests: XCTestCase {
    func testMPIHandlesAreVisibleToSwift() {
        XCTAssertNotNil(rm_mpi_comm_world())
        XCTAssertNotNil(rm_mpi_float())
        XCTAssertNotNil(rm_mpi_sum())
        XCTAssertNotNil(rm_mpi_in_place())
        var version: Int32 = 0, subversion: Int32 = 0
        XCTAssertEqual(MPI_Get_version(&version, &subversion), MPI_SUCCESS)
        XCTAssertGreaterThanOrEqual(version, 3)
    }

    func testOpenBLASMultiplies() {
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        var c = [Float](repeating: 0, count: 4)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1, a, 2, b, 2, 0, &c, 2)
        XCTAssertEqual(c, [19, 22, 43, 50])
    }

    func testZstdRoundTrip() {
        let input = [UInt8]((0..<10_000).map { UInt8($0 % 251) })
        var compressed = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
        let n = ZSTD_compress(&compressed, compressed.count, input, input.count, 3)
        XCTAssertEqual(ZSTD_isError(n), 0)
        var output = [UInt8](repeating: 0, count: input.count)
        let m = ZSTD_decompress(&output, output.count, compressed, n)
        XCTAssertEqual(m, input.count)
        XCTAssertEqual(output, input)
    }

    func testTurboJPEGAndZlibLoad() {
        let handle = tjInitDecompress()
        XCTAssertNotNil(handle)
        tjDestroy(handle)
        XCTAssertFalse(String(cString: zlibVersion()).isEmpty)
    }
}
