import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@testable import Thudo

/// The citizen's OpenID Connect sign-in, as the test server's local identity provider does it
/// (scripts/with-server.sh starts it). A real app opens VNeID's sign-in with the nonce and gets the
/// ID token back; here the test server mints it.
func testIdToken(citizenId: String, nonce: String) async throws -> String {
    guard let base = ProcessInfo.processInfo.environment["THUDO_SERVER_URL"],
          let url = URL(string: base + "/test/identity/token") else {
        throw NSError(domain: "thudo-test", code: 1, userInfo: [NSLocalizedDescriptionKey: "no THUDO_SERVER_URL"])
    }
    var request = URLRequest(url: url)
    request.httpMethod = "POST"
    request.setValue("application/json", forHTTPHeaderField: "content-type")
    request.httpBody = try JSONSerialization.data(withJSONObject: ["citizen_id": citizenId, "nonce": nonce])
    let data: Data = try await withCheckedThrowingContinuation { continuation in
        URLSession.shared.dataTask(with: request) { data, _, error in
            if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: data ?? Data()) }
        }.resume()
    }
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
          let token = object["id_token"] as? String else {
        throw NSError(domain: "thudo-test", code: 2, userInfo: [NSLocalizedDescriptionKey: String(decoding: data, as: UTF8.self)])
    }
    return token
}

/// Registers `vault` for `citizenId` the way an app does: nonce, sign-in, registration.
func registerForTest(_ client: SyncClient, _ vault: Vault, citizenId: String, name: String) async throws {
    let nonce = try await client.registrationNonce()
    _ = try await client.register(vault: vault, idToken: try await testIdToken(citizenId: citizenId, nonce: nonce), deviceName: name)
}

/// What the operator does through the backend's admin API (here: the test server's), such as
/// recording a guardianship from the household registry or an entitlement from the population
/// registry. Returns the HTTP status.
func adminPost(_ path: String, _ body: [String: Any]) async throws -> Int {
    let environment = ProcessInfo.processInfo.environment
    guard let base = environment["THUDO_SERVER_URL"], let token = environment["THUDO_TEST_ADMIN_TOKEN"],
          let url = URL(string: base + path) else {
        throw NSError(domain: "thudo-test", code: 1, userInfo: [NSLocalizedDescriptionKey: "no THUDO_SERVER_URL or THUDO_TEST_ADMIN_TOKEN"])
    }
    var request = URLRequest(url: url)
    request.httpMethod = "POST"
    request.setValue("application/json", forHTTPHeaderField: "content-type")
    request.setValue("Bearer \(token)", forHTTPHeaderField: "authorization")
    request.httpBody = try JSONSerialization.data(withJSONObject: body)
    return try await withCheckedThrowingContinuation { continuation in
        URLSession.shared.dataTask(with: request) { _, response, error in
            if let error { continuation.resume(throwing: error) } else {
                continuation.resume(returning: (response as? HTTPURLResponse)?.statusCode ?? 0)
            }
        }.resume()
    }
}
