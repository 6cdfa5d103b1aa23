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

private func testPost(_ path: String, _ body: Data, token: String? = nil) async throws -> [String: Any] {
    guard let base = ProcessInfo.processInfo.environment["THUDO_SERVER_URL"], let url = URL(string: base + path) else {
        throw NSError(domain: "thudo-test", code: 1, userInfo: [NSLocalizedDescriptionKey: "no THUDO_SERVER_URL"])
    }
    var request = URLRequest(url: url)
    request.httpMethod = "POST"
    request.setValue("application/json", forHTTPHeaderField: "content-type")
    if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "authorization") }
    request.httpBody = body
    let data: Data = try await withCheckedThrowingContinuation { continuation in
        URLSession.shared.dataTask(with: request) { data, _, error in
            if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: data ?? Data()) }
        }.resume()
    }
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw NSError(domain: "thudo-test", code: 2, userInfo: [NSLocalizedDescriptionKey: String(decoding: data, as: UTF8.self)])
    }
    return object
}

/// The health authority (an operator of the test identity provider) publishes a trust bundle;
/// returns the trust-list public key apps are built with and the version published.
func publishTestTrustBundle(_ bodyJson: String) async throws -> (key: String, version: Int64) {
    let login = try await testPost("/test/identity/operator-token",
                                   try JSONSerialization.data(withJSONObject: ["role": "health_authority", "organisation": "byt"]))
    let token = login["access_token"] as? String
    let answer = try await testPost("/v1/admin/health/trust-bundle", Data(bodyJson.utf8), token: token)
    guard let key = answer["public_key"] as? String, let version = answer["version"] as? NSNumber else {
        throw NSError(domain: "thudo-test", code: 3, userInfo: [NSLocalizedDescriptionKey: "\(answer)"])
    }
    return (key, version.int64Value)
}

/// A party organisation's request (an operator of the test identity provider, governing `hn`).
@discardableResult
func partyPost(_ path: String, _ bodyJson: String) async throws -> [String: Any] {
    let login = try await testPost("/test/identity/operator-token",
                                   try JSONSerialization.data(withJSONObject: ["role": "party_organisation", "organisation": "hn"]))
    return try await testPost(path, Data(bodyJson.utf8), token: login["access_token"] as? String)
}
