package vn.hanoi.thudo

import android.content.Context

// The Android-only samples of docs/android.md, compiled against the Android framework
// (pom.xml, profile android-framework). Not part of the library.

internal suspend fun openWithAndroidKeystore(context: Context, path: String): TransitPhone {
    val vault = Vault.openWithKeyProvider(path, AndroidKeystore.vaultKeyProvider(context), null)
    val phone = TransitPhone.open(vault, AndroidKeystore.transitSigner(context), 5)
    return phone
}
