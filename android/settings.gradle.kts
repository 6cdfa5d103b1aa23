// The Android library build (Android Studio / Gradle). Not run in this repository's CI, which has
// no Android SDK: there, pom.xml compiles the same sources on the JVM (docs/android.md).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
// jvmToolchain(17) downloads a JDK 17 when the machine has none.
plugins {
    id("org.gradle.toolchains.foojay-resolver-convention") version "1.0.0"
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "thudo-android"
