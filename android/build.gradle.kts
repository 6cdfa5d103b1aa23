// Android library: the UniFFI-generated Kotlin (../build/bindings/kotlin, made by
// scripts/build-android.sh), the helpers in src/main/kotlin and src/android/kotlin, and the
// native library for arm64-v8a, armeabi-v7a and x86_64 (build/jniLibs).
plugins {
    id("com.android.library") version "8.13.0"
    id("org.jetbrains.kotlin.android") version "2.2.21"
}

android {
    namespace = "vn.hanoi.thudo"
    compileSdk = 36
    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }
    sourceSets["main"].apply {
        manifest.srcFile("src/android/AndroidManifest.xml")
        java.srcDirs("src/main/kotlin", "src/android/kotlin", "../build/bindings/kotlin")
        jniLibs.srcDirs("build/jniLibs")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlin { jvmToolchain(17) }
    buildTypes {
        release { isMinifyEnabled = false } // the app minifies, with consumer-rules.pro
    }
}

dependencies {
    // JNA as an AAR: it carries libjnidispatch.so for every Android ABI. 5.18.1 or later.
    implementation("net.java.dev.jna:jna:5.18.1@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
}
