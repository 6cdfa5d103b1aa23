// A citizen's day with thudo, the way an app lives it: open the encrypted vault, sign in and
// register, sync with a time budget, search the party library, write a note and see the
// screen's observer hear of it, read the health book, buy a pass and show its QR, and handle an
// error by its code. scripts/test-swift.sh builds and runs it (`swift run CitizenDay`) against
// the reference backend on loopback (THUDO_SERVER_URL).
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Thudo

/// Stands for the app's VNeID sign-in: the reference backend's test identity provider.
func signIn(_ base: String, citizen: String, nonce: String) async throws -> String {
    var request = URLRequest(url: URL(string: base + "/test/identity/token")!)
    request.httpMethod = "POST"
    request.setValue("application/json", forHTTPHeaderField: "content-type")
    request.httpBody = try JSONSerialization.data(withJSONObject: ["citizen_id": citizen, "nonce": nonce])
    let data: Data = try await withCheckedThrowingContinuation { continuation in
        URLSession.shared.dataTask(with: request) { data, _, error in
            if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: data ?? Data()) }
        }.resume()
    }
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
          let token = object["id_token"] as? String else { fatalError("no token: \(String(decoding: data, as: UTF8.self))") }
    return token
}

@main
struct CitizenDay {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["THUDO_SERVER_URL"] else { fatalError("run through scripts/test-swift.sh (THUDO_SERVER_URL)") }
        let citizen = environment["THUDO_DEMO_CITIZEN"] ?? "001088012345"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-sample-\(UUID().uuidString)")

        let vault = try await Vault.openWithPassphrase(path: dir.appendingPathComponent("vault").path,
                                                       passphrase: "correct horse battery staple", options: nil)
        let sync = try SyncClient.withHttpClient(settings: SyncSettings(baseUrl: url), http: URLSessionSyncTransport())
        _ = try await sync.register(vault: vault, idToken: try await signIn(url, citizen: citizen, nonce: try await sync.registrationNonce()),
                                    deviceName: "Sample iPhone")
        print("registered with \(url)")

        let library = try await HandbookLibrary.open(path: dir.appendingPathComponent("library.db").path)
        let report = try await sync.sync(vault: vault, library: library, cancel: CancelToken.withTimeoutMs(budgetMs: 30_000))
        print("synced: \(report.applied) changes applied in \(report.elapsedMs) ms")

        guard let hit = try await library.search(query: "nghi quyet khoa hoc", limit: 3).first else { fatalError("the library is empty") }
        print("library: \(hit.number) \(hit.title)")

        var noteChanges = vault.changes(["handbook.note"]).makeAsyncIterator()
        _ = try await MemberHandbook(vault: vault).saveNote(id: "sample-note", documentId: hit.id, text: "Đọc trước buổi sinh hoạt chi bộ")
        print("note saved; the screen heard of \(await noteChanges.next() ?? [])")

        let book = HealthBook(vault: vault)
        var records = 0
        let people = try await book.people()
        for person in people { records += try await book.records(personId: person.id ?? "", kind: nil, from: nil, to: nil).count }
        print("health book: \(people.count) people, \(records) records")

        let phone = try await TransitPhone.open(vault: vault, signer: nil, refreshSecs: 5)
        let month = String(ISO8601DateFormatter().string(from: Date()).prefix(7))
        let pass = try await TransitClient(client: sync).buyTransitProduct(vault: vault, phone: phone, product: .monthlyAllRoutes, category: .standard, route: 0, month: month)
        if pass.status == .awaitingPayment {
            // A real app opens pass.paymentUrl for the buyer, then collects once the provider confirms.
            print("pay at \(pass.paymentUrl)")
            _ = try await TransitClient(client: sync).collectTransitOrder(vault: vault, phone: phone, orderId: pass.orderId)
        }
        let qr = try await phone.currentQr()
        print("transit: card \(pass.cardId), \(pass.priceVnd) VND, QR version \(qr.version) (\(qr.size)x\(qr.size))")

        do {
            _ = try await vault.get(collection: "notes", id: "no-such-note")
        } catch let error as VaultError {
            print("error \(error.code()): \(error.localizedDescription) (retry helps: \(error.isRetryable()))")
        }
        await vault.shutdown()
        print("done")
    }
}
