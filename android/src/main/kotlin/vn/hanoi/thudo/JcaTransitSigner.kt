package vn.hanoi.thudo

import java.math.BigInteger
import java.security.GeneralSecurityException
import java.security.PrivateKey
import java.security.Signature
import java.security.interfaces.ECPublicKey

/**
 * A [TransitSigner] over a JCA P-256 key pair: on Android a non-exportable Android Keystore key
 * (see `AndroidKeystore.transitSigner`), where `SHA256withECDSA` runs inside the secure hardware
 * and returns DER, which the library accepts. The public key is given to the library as SEC1
 * uncompressed (65 bytes).
 */
class JcaTransitSigner(
    private val privateKey: PrivateKey,
    private val publicKey: ECPublicKey,
) : TransitSigner {
    override fun publicKey(): ByteArray {
        val w = publicKey.w
        return byteArrayOf(4) + fixed32(w.affineX) + fixed32(w.affineY)
    }

    override fun sign(message: ByteArray): ByteArray = try {
        Signature.getInstance("SHA256withECDSA").run {
            initSign(privateKey)
            update(message)
            sign()
        }
    } catch (e: GeneralSecurityException) {
        throw SignerException.Failed(e.message ?: e.javaClass.simpleName)
    }

    private fun fixed32(n: BigInteger): ByteArray {
        val b = n.toByteArray().dropWhile { it == 0.toByte() }.toByteArray()
        require(b.size <= 32) { "not a P-256 coordinate" }
        return ByteArray(32 - b.size) + b
    }
}
