package vn.hanoi.thudo

/**
 * Sends thudo's log records to Logcat. At start-up:
 *
 * ```
 * setLogSink(LogcatSink(android.util.Log::println), if (BuildConfig.DEBUG) LogLevel.DEBUG else LogLevel.INFO)
 * ```
 *
 * [println] is `android.util.Log.println` (taken as a function so this class builds and is
 * tested without the Android SDK). Records carry counts, collection names, reasons and
 * durations, never personal data; each becomes one line, `message key=value ...`, tagged
 * `thudo.<module>`.
 */
class LogcatSink(private val println: (priority: Int, tag: String, message: String) -> Int) : LogSink {
    override fun log(record: LogRecord) {
        println(priority(record.level), tag(record.target), line(record))
    }

    companion object {
        /** The Logcat priority of a level (`android.util.Log.VERBOSE` ... `ERROR`). */
        fun priority(level: LogLevel): Int = when (level) {
            LogLevel.TRACE -> 2
            LogLevel.DEBUG -> 3
            LogLevel.INFO -> 4
            LogLevel.WARN -> 5
            LogLevel.ERROR, LogLevel.OFF -> 6
        }

        /** `thudo.<last module>`, cut to the 23 characters older Androids allow in a tag. */
        fun tag(target: String): String = ("thudo." + target.substringAfterLast("::")).take(23)

        /** The message and its fields, sorted by name. */
        fun line(record: LogRecord): String {
            val fields = record.fields.entries.sortedBy { it.key }.joinToString(" ") { "${it.key}=${it.value}" }
            return if (fields.isEmpty()) record.message else "${record.message} $fields"
        }
    }
}
