package vn.hanoi.thudo.sample

import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.YearMonth
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import okhttp3.OkHttpClient
import vn.hanoi.thudo.CancelToken
import vn.hanoi.thudo.HandbookLibrary
import vn.hanoi.thudo.HealthBook
import vn.hanoi.thudo.MemberHandbook
import vn.hanoi.thudo.OkHttpSyncTransport
import vn.hanoi.thudo.PassengerCategory
import vn.hanoi.thudo.SyncClient
import vn.hanoi.thudo.SyncSettings
import vn.hanoi.thudo.TransitClient
import vn.hanoi.thudo.TransitOrderStatus
import vn.hanoi.thudo.TransitPhone
import vn.hanoi.thudo.TransitProduct
import vn.hanoi.thudo.Vault
import vn.hanoi.thudo.VaultException
import vn.hanoi.thudo.changes

/**
 * A citizen's day with thudo, the way an app lives it: open the encrypted vault, sign in and
 * register, sync in the background with a time budget, search the party library, write a note
 * and see the screen's observer hear of it, read the health book, buy a pass and show its QR,
 * and handle an error by its code. `scripts/test-kotlin.sh` builds and runs it against the
 * reference backend on loopback (THUDO_SERVER_URL).
 */
fun main(): Unit = runBlocking {
    val url = System.getenv("THUDO_SERVER_URL") ?: error("run through scripts/test-kotlin.sh (THUDO_SERVER_URL)")
    val citizen = System.getenv("THUDO_DEMO_CITIZEN") ?: "001088012345"
    val dir = Files.createTempDirectory("thudo-sample")

    val vault = Vault.openWithPassphrase(dir.resolve("vault").toString(), "correct horse battery staple", null)
    val http = OkHttpSyncTransport(OkHttpClient())   // the app's client: its trust store, proxy and pins
    val sync = SyncClient.withHttpClient(SyncSettings(baseUrl = url), http)
    sync.register(vault, signIn(url, citizen, sync.registrationNonce()), "Sample phone")
    println("registered with $url")

    val library = HandbookLibrary.open(dir.resolve("library.db").toString())
    val report = sync.sync(vault, library, null, CancelToken.withTimeoutMs(30_000L))
    println("synced: ${report.applied} changes applied in ${report.elapsedMs} ms")

    val hit = library.search("nghi quyet khoa hoc", 3).first()
    println("library: ${hit.number} ${hit.title}")

    // A screen observing the notes: observing before `async` returns.
    val noteHeard = async(start = CoroutineStart.UNDISPATCHED) { vault.changes("handbook.note").first() }
    MemberHandbook(vault).saveNote("sample-note", hit.id, "Đọc trước buổi sinh hoạt chi bộ")
    println("note saved; the screen heard of ${withTimeout(5_000) { noteHeard.await() }}")

    val health = HealthBook(vault).people()
    println("health book: ${health.size} people, ${health.sumOf { HealthBook(vault).records(it.id!!, null, null, null).size }} records")

    val phone = TransitPhone.open(vault, null, 5)
    val pass = TransitClient(sync).buyTransitProduct(vault, phone, TransitProduct.MONTHLY_ALL_ROUTES, PassengerCategory.STANDARD, 0, YearMonth.now().toString())
    if (pass.status == TransitOrderStatus.AWAITING_PAYMENT) {
        // A real app opens pass.paymentUrl for the buyer, then collects once the provider confirms.
        println("pay at ${pass.paymentUrl}")
        TransitClient(sync).collectTransitOrder(vault, phone, pass.orderId)
    }
    val qr = phone.currentQr()
    println("transit: card ${pass.cardId}, ${pass.priceVnd} VND, QR version ${qr.version} (${qr.size}x${qr.size})")

    try {
        vault.get("notes", "no-such-note")
    } catch (e: VaultException) {
        println("error ${e.code()}: ${e.message} (retry helps: ${e.isRetryable()})")
    }
    vault.shutdown()
    println("done")
}

/** Stands for the app's VNeID sign-in: the reference backend's test identity provider. */
private fun signIn(url: String, citizen: String, nonce: String): String {
    val request = HttpRequest.newBuilder(URI.create("$url/test/identity/token"))
        .header("content-type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString("""{"citizen_id":"$citizen","nonce":"$nonce"}"""))
        .build()
    val body = HttpClient.newHttpClient().send(request, HttpResponse.BodyHandlers.ofString()).body()
    return Regex(""""id_token"\s*:\s*"([^"]+)"""").find(body)?.groupValues?.get(1) ?: error("no token: $body")
}
