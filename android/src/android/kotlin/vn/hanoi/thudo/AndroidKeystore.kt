package vn.hanoi.thudo

import android.content.Context
import android.content.pm.PackageManager
import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.security.keystore.StrongBoxUnavailableException
import java.security.KeyPairGenerator
import java.security.KeyStore
import java.security.PrivateKey
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey

/**
 * thudo's keys in Android Keystore: the AES key that wraps the vault's data key, and the
 * non-exportable P-256 device key that signs transit QRs. Both are made on first use, in
 * StrongBox when the device has it (falling back to the TEE), and never leave the hardware.
 *
 * ```kotlin
 * val vault = Vault.openWithKeyProvider(path, AndroidKeystore.vaultKeyProvider(context), null)
 * val phone = TransitPhone.open(vault, AndroidKeystore.transitSigner(context), 5)
 * ```
 */
object AndroidKeystore {
    private const val PROVIDER = "AndroidKeyStore"

    private fun keyStore(): KeyStore = KeyStore.getInstance(PROVIDER).apply { load(null) }

    private fun hasStrongBox(context: Context): Boolean =
        Build.VERSION.SDK_INT >= 28 &&
            context.packageManager.hasSystemFeature(PackageManager.FEATURE_STRONGBOX_KEYSTORE)

    /**
     * The vault's key provider over the AES-256 key [alias]. The key is made when a new vault is
     * created, never in place of a missing one: a vault restored without its key reports
     * `VaultException.KeyLost` (see docs/android.md, "Key loss and restore").
     */
    fun vaultKeyProvider(context: Context, alias: String = "thudo.vault.v1"): AesGcmKeyProvider {
        val strongBox = hasStrongBox(context)
        return AesGcmKeyProvider(
            alias,
            existingKey = { keyStore().getKey(alias, null) as? SecretKey },
            createKey = { generateAes(alias, strongBox) },
        )
    }

    private fun generateAes(alias: String, strongBox: Boolean): SecretKey {
        fun spec(strong: Boolean) = KeyGenParameterSpec.Builder(
            alias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT,
        )
            .setKeySize(256)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setRandomizedEncryptionRequired(true)
            .apply { if (strong && Build.VERSION.SDK_INT >= 28) setIsStrongBoxBacked(true) }
            .build()
        val generator = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, PROVIDER)
        return try {
            generator.init(spec(strongBox))
            generator.generateKey()
        } catch (e: StrongBoxUnavailableException) {
            generator.init(spec(false))
            generator.generateKey()
        }
    }

    /** The transit device key [alias]: P-256, signing only, made on first use. */
    fun transitSigner(context: Context, alias: String = "thudo.transit.device.v1"): JcaTransitSigner {
        val ks = keyStore()
        if (!ks.containsAlias(alias)) {
            fun spec(strong: Boolean) = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_SIGN)
                .setAlgorithmParameterSpec(ECGenParameterSpec("secp256r1"))
                .setDigests(KeyProperties.DIGEST_SHA256)
                .apply { if (strong && Build.VERSION.SDK_INT >= 28) setIsStrongBoxBacked(true) }
                .build()
            val generator = KeyPairGenerator.getInstance(KeyProperties.KEY_ALGORITHM_EC, PROVIDER)
            try {
                generator.initialize(spec(hasStrongBox(context)))
                generator.generateKeyPair()
            } catch (e: StrongBoxUnavailableException) {
                generator.initialize(spec(false))
                generator.generateKeyPair()
            }
        }
        val entry = ks.getEntry(alias, null) as KeyStore.PrivateKeyEntry
        return JcaTransitSigner(entry.privateKey as PrivateKey, entry.certificate.publicKey as ECPublicKey)
    }
}
