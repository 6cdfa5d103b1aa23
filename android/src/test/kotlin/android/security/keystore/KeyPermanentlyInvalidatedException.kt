package android.security.keystore

/**
 * A stand-in for Android's exception on the JVM (the framework jar the Android helpers compile
 * against is built for a newer Java than the tests run on). `AesGcmKeyProvider` knows it by name.
 */
class KeyPermanentlyInvalidatedException(message: String) : java.security.InvalidKeyException(message)
