package vn.hanoi.thudo

/**
 * Bytes held in a record (a vault record's body, a key, a deny list). Unlike a `ByteArray`,
 * two `Bytes` with the same content are equal and hash alike, so records holding them compare
 * as values. The array is not copied: do not change it after handing it over.
 */
class Bytes(internal val array: ByteArray) {
    /** A copy of the bytes. */
    fun toByteArray(): ByteArray = array.copyOf()

    /** The number of bytes. */
    val size: Int get() = array.size

    override fun equals(other: Any?): Boolean = other is Bytes && array.contentEquals(other.array)

    override fun hashCode(): Int = array.contentHashCode()

    override fun toString(): String = "Bytes(${array.size})"
}

/** These bytes as [Bytes], for a record. */
fun ByteArray.toBytes(): Bytes = Bytes(this)
