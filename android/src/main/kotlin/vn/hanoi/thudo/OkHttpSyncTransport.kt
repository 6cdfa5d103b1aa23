package vn.hanoi.thudo

import java.io.IOException
import java.util.Base64
import java.util.concurrent.TimeUnit
import okhttp3.CertificatePinner
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody.Companion.toRequestBody
import okhttp3.Response

/**
 * Sync over OkHttp, the platform's HTTP stack: the app's trust (system and user certificate
 * authorities, the Network Security Config) and the system proxy apply, which the built-in
 * client (rustls with its own roots) cannot see. Pinning is OkHttp's: build the client with
 * [OkHttpSyncTransport.client].
 *
 * ```kotlin
 * val http = OkHttpSyncTransport(OkHttpSyncTransport.client("api.thudo.hanoi.gov.vn", pins))
 * val sync = SyncClient.withHttpClient(SyncSettings(baseUrl = url), http)
 * ```
 */
class OkHttpSyncTransport(private val client: OkHttpClient) : HttpClient {
    // Called on a library thread set aside for it: blocking here blocks no coroutine.
    override fun send(request: HttpRequest): HttpResponse {
        // OkHttp refuses a POST, PUT or PATCH without a body (the validator's token renewal is
        // a POST with none): such a request goes with an empty one.
        val body = request.body?.toByteArray()?.toRequestBody()
            ?: ByteArray(0).toRequestBody().takeIf { request.method in METHODS_WITH_BODY }
        val okRequest = Request.Builder()
            .url(request.url)
            .method(request.method, body)
            .apply { request.headers.forEach { (name, value) -> header(name, value) } }
            .build()
        // The request's limit for the whole exchange, and for each phase of it (OkHttp's own
        // 10 s defaults would cut a slow answer short).
        val call = client.newBuilder()
            .callTimeout(request.timeoutMs, TimeUnit.MILLISECONDS)
            .connectTimeout(request.timeoutMs, TimeUnit.MILLISECONDS)
            .readTimeout(request.timeoutMs, TimeUnit.MILLISECONDS)
            .writeTimeout(request.timeoutMs, TimeUnit.MILLISECONDS)
            .build()
            .newCall(okRequest)
        return try {
            call.execute().use { read(it, request.maxBodyBytes) }
        } catch (e: HttpException) {
            throw e
        } catch (e: IOException) {
            throw HttpException.Failed(failure(e))
        }
    }

    private fun read(response: Response, maxBody: Long): HttpResponse {
        val body = response.body
        if (body.contentLength() > maxBody) throw HttpException.TooLarge()
        val source = body.source()
        // Reads at most one byte past the limit: a longer body is refused, never held whole.
        source.request(maxBody + 1)
        if (source.buffer.size > maxBody) throw HttpException.TooLarge()
        val bytes = source.buffer.readByteArray()
        // The first value of each header, as the built-in client reads them.
        val headers = response.headers.names().associateWith { response.headers.values(it).first() }
        return HttpResponse(response.code, headers, Bytes(bytes))
    }

    // The exception's kind and message, never the URL (it holds ids and cursors).
    private fun failure(e: Throwable) = e.javaClass.simpleName + (e.message?.let { ": $it" } ?: "")

    companion object {
        private val METHODS_WITH_BODY = setOf("POST", "PUT", "PATCH")

        /**
         * An OkHttp client for thudo's backend: redirects not followed, and, with [pinsSha256Hex]
         * (the SHA-256 of a server key's SubjectPublicKeyInfo, hex, as in `SyncSettings`),
         * pinned to those keys for [host].
         */
        fun client(host: String? = null, pinsSha256Hex: List<String> = emptyList()): OkHttpClient {
            require(host != null || pinsSha256Hex.isEmpty()) { "pins need the host they are for" }
            val builder = OkHttpClient.Builder().followRedirects(false).followSslRedirects(false)
            if (host != null && pinsSha256Hex.isNotEmpty()) {
                val pinner = CertificatePinner.Builder()
                pinsSha256Hex.forEach { pinner.add(host, "sha256/" + Base64.getEncoder().encodeToString(hex(it))) }
                builder.certificatePinner(pinner.build())
            }
            return builder.build()
        }

        private fun hex(text: String): ByteArray {
            require(text.length == 64 && text.all { it in "0123456789abcdefABCDEF" }) { "a pin is 64 hex digits" }
            return ByteArray(32) { text.substring(it * 2, it * 2 + 2).toInt(16).toByte() }
        }
    }
}
