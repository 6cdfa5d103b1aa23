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
@discardableResult
func registerForTest(_ client: SyncClient, _ vault: Vault, citizenId: String, name: String) async throws -> String {
    let nonce = try await client.registrationNonce()
    return try await client.register(vault: vault, idToken: try await testIdToken(citizenId: citizenId, nonce: nonce), deviceName: name)
}
