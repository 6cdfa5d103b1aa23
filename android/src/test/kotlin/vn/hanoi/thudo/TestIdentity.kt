package vn.hanoi.thudo

import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse

/**
 * The citizen's OpenID Connect sign-in, as the test server's local identity provider does it
 * (scripts/with-server.sh starts it). A real app opens VNeID's sign-in with the nonce and gets
 * the ID token back; here the test server mints it.
 */
fun testIdToken(citizenId: String, nonce: String): String {
    val url = System.getenv("THUDO_SERVER_URL") ?: error("run through scripts/test-kotlin.sh (THUDO_SERVER_URL)")
    val request = HttpRequest.newBuilder(URI.create("$url/test/identity/token"))
        .header("content-type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString("""{"citizen_id":"$citizenId","nonce":"$nonce"}"""))
        .build()
    val body = HttpClient.newHttpClient().send(request, HttpResponse.BodyHandlers.ofString()).body()
    return Regex(""""id_token"\s*:\s*"([^"]+)"""").find(body)?.groupValues?.get(1) ?: error("no token: $body")
}

/** Registers `vault` for `citizenId` the way an app does: nonce, sign-in, registration. */
suspend fun registerForTest(client: SyncClient, vault: Vault, citizenId: String, name: String): String =
    client.register(vault, testIdToken(citizenId, client.registrationNonce()), name)

private fun testPost(path: String, body: String, token: String? = null): String {
    val url = System.getenv("THUDO_SERVER_URL") ?: error("run through scripts/test-kotlin.sh (THUDO_SERVER_URL)")
    val builder = HttpRequest.newBuilder(URI.create("$url$path"))
        .header("content-type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(body))
    if (token != null) builder.header("authorization", "Bearer $token")
    return HttpClient.newHttpClient().send(builder.build(), HttpResponse.BodyHandlers.ofString()).body()
}

private fun field(body: String, name: String): String =
    Regex(""""$name"\s*:\s*"?([^",}]+)"?""").find(body)?.groupValues?.get(1) ?: error("no $name: $body")

/**
 * The health authority (an operator of the test identity provider) publishes a trust bundle;
 * returns the trust-list public key apps are built with and the version published.
 */
fun publishTestTrustBundle(bodyJson: String): Pair<String, Long> {
    val token = field(testPost("/test/identity/operator-token", """{"role":"health_authority","organisation":"byt"}"""), "access_token")
    val answer = testPost("/v1/admin/health/trust-bundle", bodyJson, token)
    return field(answer, "public_key") to field(answer, "version").toLong()
}

/** A party organisation's request (an operator of the test identity provider, governing `hn`). */
fun partyPost(path: String, bodyJson: String): String {
    val token = field(testPost("/test/identity/operator-token", """{"role":"party_organisation","organisation":"hn"}"""), "access_token")
    return testPost(path, bodyJson, token)
}
