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
 * [existingKey] looks the key up (null when there is none) and is called for every wrap and
 * unwrap. [createKey], when not null, makes the key, and only when a new vault is wrapped: a
 * missing key is never replaced while unwrapping, so a vault restored to a new phone (whose
 * hardware key did not travel) fails with `VaultException.KeyLost`, not `WrongKey`, and can be
 * recovered (docs/android.md, "Key loss and restore").
 *
 * Failures: a key invalidated for good (`KeyPermanentlyInvalidatedException`) or missing is
 * [KeyProviderException.Gone]; any other platform refusal (device locked, user authentication
 * needed) is [KeyProviderException.Unavailable], worth retrying after the user unlocks.
 *
 * [keyId] names the key; when it changes (a new Keystore alias), rotate with
 * `Vault.rotateKeyProvider`.
 */
class AesGcmKeyProvider(
    private val keyId: String,
    private val existingKey: () -> SecretKey?,
    private val createKey: (() -> SecretKey)?,
) : KeyProvider {
    override fun keyId(): String = keyId

    override fun wrapKey(dataKey: ByteArray): ByteArray {
        val cipher = platform {
            val key = existingKey() ?: createKey?.invoke() ?: throw KeyProviderException.Gone("no key $keyId")
            Cipher.getInstance(TRANSFORMATION).apply { init(Cipher.ENCRYPT_MODE, key) }
        }
        val iv = cipher.iv
        check(iv.size == IV_BYTES) { "unexpected GCM IV size ${iv.size}" }
        return iv + cipher.doFinal(dataKey)
    }

    override fun unwrapKey(wrapped: ByteArray): ByteArray {
        if (wrapped.size < IV_BYTES + TAG_BYTES) throw KeyProviderException.WrongKey()
        val cipher = platform {
            val key = existingKey()
                ?: throw KeyProviderException.Gone("no key $keyId on this device (restored from a backup?)")
            Cipher.getInstance(TRANSFORMATION).apply {
                init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(TAG_BYTES * 8, wrapped, 0, IV_BYTES))
            }
        }
        return try {
            cipher.doFinal(wrapped, IV_BYTES, wrapped.size - IV_BYTES)
        } catch (e: AEADBadTagException) {
            throw KeyProviderException.WrongKey()
        }
    }

    /** Sorts the platform's exceptions into gone for good and unavailable for now. */
    private fun <T> platform(work: () -> T): T = try {
        work()
    } catch (e: GeneralSecurityException) {
        val reason = e.message ?: e.javaClass.simpleName
        // Android's class, named so this file also builds on the JVM. Android 12+ often wraps
        // it (an UnrecoverableKeyException from KeyStore.getKey): look down the causes.
        if (generateSequence<Throwable>(e) { it.cause }.take(8).any { it.javaClass.name == INVALIDATED }) {
            throw KeyProviderException.Gone(reason)
        }
        throw KeyProviderException.Unavailable(reason)
    }

    private companion object {
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IV_BYTES = 12
        const val TAG_BYTES = 16
        const val INVALIDATED = "android.security.keystore.KeyPermanentlyInvalidatedException"
    }
}
