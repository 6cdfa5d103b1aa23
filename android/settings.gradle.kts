// The Android library build (Android Studio / Gradle). Not run in this repository's CI, which has
// no Android SDK: there, pom.xml compiles the same sources on the JVM (docs/android.md).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "thudo-android"
