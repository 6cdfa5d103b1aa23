package vn.hanoi.thudo

import android.content.Context
import java.io.File

/**
 * Where a vault lives on Android. Both places are outside Auto Backup and device transfer
 * (`noBackupFilesDir`): a vault file must never reach another phone without its Keystore key,
 * where it would only be reported `VaultException.KeyLost`.
 *
 * ```kotlin
 * val vault = Vault.openWithKeyProvider(VaultLocation.credentialEncrypted(context), AndroidKeystore.vaultKeyProvider(context), null)
 * ```
 */
object VaultLocation {
    /** The citizen's vault: credential-encrypted storage, readable after the first unlock. */
    fun credentialEncrypted(context: Context, name: String = "vault"): String =
        File(File(context.noBackupFilesDir, "thudo"), name).path

    /**
     * A vault that must open before anyone unlocks the device (a validator on a bus that
     * reboots): device-protected storage, with a Keystore key that needs no user
     * authentication. Never put a citizen's personal data here.
     */
    fun deviceProtected(context: Context, name: String = "validator"): String =
        File(File(context.createDeviceProtectedStorageContext().noBackupFilesDir, "thudo"), name).path
}
