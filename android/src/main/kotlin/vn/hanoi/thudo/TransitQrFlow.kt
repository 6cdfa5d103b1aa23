package vn.hanoi.thudo

import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow

/**
 * The QR to show, as a cold [Flow]: a fresh [TransitQr] at once and then each time the shown
 * QR's refresh time ([TransitQr.refreshAt], every [refreshSecs]) comes, until the collector
 * stops (leaving the screen cancels the collecting coroutine, which stops the flow). [clock]
 * gives the device time in unix seconds (inject one in tests).
 *
 * ```kotlin
 * lifecycleScope.launch {
 *     repeatOnLifecycle(Lifecycle.State.STARTED) {
 *         phone.qrFlow(refreshSecs = 5).collect { qr -> showQr(qr.modules, qr.size) }
 *     }
 * }
 * ```
 */
fun TransitPhone.qrFlow(
    refreshSecs: Long = 5,
    clock: () -> Long = { System.currentTimeMillis() / 1000 },
): Flow<TransitQr> = flow {
    require(refreshSecs > 0) { "refreshSecs must be positive" }
    while (true) {
        val qr = currentQrAt(clock())
        emit(qr)
        // The phone signs a new QR from its refresh time on; wake up then (at least 1 s later).
        val wait = qr.refreshAt.toLong() - clock()
        delay(wait.coerceIn(1, refreshSecs) * 1000)
    }
}
