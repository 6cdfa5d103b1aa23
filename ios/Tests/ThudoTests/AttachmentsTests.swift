import Foundation
import XCTest

@testable import Thudo

/// Files attached to records: kept encrypted in the vault, published ones fetched when opened.
final class AttachmentsTests: XCTestCase {
    func vault(_ name: String) async throws -> Vault {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-files-\(name)-\(UUID().uuidString)").path
        return try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
    }

    func testAScanAttachedOfflineReadBackRemoved() async throws {
        let v = try await vault("offline")
        let files = AttachmentStore(vault: v)
        let scan = Data((0..<600_000).map { UInt8(($0 * 31) % 251) })
        let ref = try await files.add(owner: "handbook.procedure/t1", name: "giay-xac-nhan.jpg", mediaType: "image/jpeg", bytes: scan)
        XCTAssertEqual(ref.size, 600_000)
        XCTAssertEqual(ref.id.count, 64)
        let back = try await files.read(id: ref.id)
        XCTAssertEqual(back, scan)
        let listed = try await files.list(owner: "handbook.procedure/t1")
        XCTAssertEqual(listed.first?.complete, true)
        let used = try await files.usedBytes()
        XCTAssertEqual(used, 600_000)
        do {
            _ = try await files.add(owner: "handbook.procedure/t1", name: "big.bin", mediaType: "application/octet-stream",
                                    bytes: Data(count: 10 * 1024 * 1024 + 1))
            XCTFail("expected TooLarge")
        } catch let error as AttachmentError {
            XCTAssertEqual(error.code(), "attachment.too_large")
        }
        let removed = try await files.remove(owner: "handbook.procedure/t1", id: ref.id)
        XCTAssertTrue(removed)
        do {
            _ = try await files.read(id: ref.id)
            XCTFail("expected NotFound")
        } catch AttachmentError.NotFound {}
    }

    func testAPublishedFileIsFetchedWhenOpenedAndChecked() async throws {
        let url = ProcessInfo.processInfo.environment["THUDO_SERVER_URL"] ?? ""
        let client = try SyncClient(settings: SyncSettings(baseUrl: url, requestTimeoutMs: 5_000, maxAttempts: 4, backoffBaseMs: 20,
                                                           pinnedSpkiSha256Hex: []))
        let v = try await vault("online")
        try await registerForTest(client, v, citizenId: "001090090011", name: "member")
        let cell = "hn.swift.files"
        try await partyPost("/v1/admin/citizens/001090090011/cell", "{\"cell\":\"\(cell)\"}")
        let papers = Data((0..<300_000).map { UInt8(($0 * 7) % 253) })
        let answer = try await partyPost("/v1/admin/cells/\(cell)/files",
                                         "{\"name\":\"bien-ban.jpg\",\"media_type\":\"image/jpeg\",\"data\":\"\(papers.base64EncodedString())\"}")
        let reference = answer["reference"] as? [String: Any]
        let id = try XCTUnwrap(reference?["id"] as? String)
        let ref = AttachmentRef(id: id, name: "bien-ban.jpg", mediaType: "image/jpeg", size: Int64(papers.count))
        let files = AttachmentStore(vault: v)
        let fetched = try await files.fetch(client: client, owner: "handbook.meeting/m-1", reference: ref)
        XCTAssertTrue(fetched.complete)
        let back = try await files.read(id: id)
        XCTAssertEqual(back, papers)
        client.shutdown()
    }
}
