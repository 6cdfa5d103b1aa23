package vn.hanoi.thudo

import java.security.GeneralSecurityException
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * A [KeyProvider] that wraps the vault's data key with AES-256-GCM under a [SecretKey] the
 * platform keeps: on Android an Android Keystore key (see `AndroidKeystore.vaultKeyProvider`),
 * whose material never leaves the secure hardware. The IV comes from the cipher (Keystore keys
 * refuse caller IVs) and is stored in front of the wrapped key.
 *
 * [keyId] names the key; when it changes (a new Keystore alias), rotate with
 * `Vault.rotateKeyProvider`. [secretKey] is called for every wrap and unwrap, so a key that was
 * invalidated (new biometric enrolment, device lock) fails with [KeyProviderException.Unavailable].
 */
class AesGcmKeyProvider(
    private val keyId: String,
    private val secretKey: () -> SecretKey,
) : KeyProvider {
    override fun keyId(): String = keyId

    override fun wrapKey(dataKey: ByteArray): ByteArray {
        val cipher = try {
            Cipher.getInstance(TRANSFORMATION).apply { init(Cipher.ENCRYPT_MODE, secretKey()) }
        } catch (e: GeneralSecurityException) {
            throw KeyProviderException.Unavailable(e.message ?: e.javaClass.simpleName)
        }
        val iv = cipher.iv
        check(iv.size == IV_BYTES) { "unexpected GCM IV size ${iv.size}" }
        return iv + cipher.doFinal(dataKey)
    }

    override fun unwrapKey(wrapped: ByteArray): ByteArray {
        if (wrapped.size < IV_BYTES + TAG_BYTES) throw KeyProviderException.WrongKey()
        val cipher = try {
            Cipher.getInstance(TRANSFORMATION).apply {
                init(Cipher.DECRYPT_MODE, secretKey(), GCMParameterSpec(TAG_BYTES * 8, wrapped, 0, IV_BYTES))
            }
        } catch (e: GeneralSecurityException) {
            throw KeyProviderException.Unavailable(e.message ?: e.javaClass.simpleName)
        }
        return try {
            cipher.doFinal(wrapped, IV_BYTES, wrapped.size - IV_BYTES)
        } catch (e: AEADBadTagException) {
            throw KeyProviderException.WrongKey()
        }
    }

    private companion object {
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IV_BYTES = 12
        const val TAG_BYTES = 16
    }
}
