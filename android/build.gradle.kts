// Android library: the UniFFI-generated Kotlin with UniFFI's Android options
// (../build/bindings/kotlin-android, made by scripts/build-android.sh), the helpers in
// src/main/kotlin and src/android/kotlin, and the native libraries for arm64-v8a, armeabi-v7a
// and x86_64 (jniLibs/, 16 KB-page aligned, outside Gradle's build folder).
plugins {
    id("com.android.library") version "8.13.0"
    // The versions here are pom.xml's (the tested JVM build); scripts/check-packages.sh fails
    // when they part.
    id("org.jetbrains.kotlin.android") version "2.4.21"
    id("maven-publish")
}

// One version for the whole project: the workspace's, in ../Cargo.toml.
val thudoVersion: String = Regex("""(?m)^version\s*=\s*"([^"]+)"""")
    .find(rootDir.resolve("../Cargo.toml").readText())!!.groupValues[1]
group = "vn.hanoi.thudo"
version = thudoVersion

android {
    namespace = "vn.hanoi.thudo"
    compileSdk = 36
    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }
    sourceSets["main"].apply {
        manifest.srcFile("src/android/AndroidManifest.xml")
        java.srcDirs("src/main/kotlin", "src/android/kotlin", "../build/bindings/kotlin-android")
        jniLibs.srcDirs("jniLibs")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlin { jvmToolchain(17) }
    buildTypes {
        release { isMinifyEnabled = false } // the app minifies, with consumer-rules.pro
    }
    // The fakes for apps' unit tests (FakeSyncClient, FakeTransitClient) as test fixtures:
    // testImplementation(testFixtures("vn.hanoi.thudo:thudo-android:<version>")).
    testFixtures { enable = true }
    sourceSets["testFixtures"].java.srcDirs("src/testing/kotlin")
    publishing {
        singleVariant("release") {
            withSourcesJar()
        }
    }
}

dependencies {
    // JNA as an AAR: it carries libjnidispatch.so for every Android ABI. 5.18.1 or later.
    implementation("net.java.dev.jna:jna:5.18.1@aar")
    // `api`: the public API names their types (Flow in the change and status helpers;
    // OkHttpClient in OkHttpSyncTransport), so an app compiles against them without naming
    // them itself.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
    // Sync over the platform's HTTP stack (OkHttpSyncTransport): user CAs, Network Security
    // Config and the system proxy apply.
    api("com.squareup.okhttp3:okhttp:5.5.1")
    // @RequiresApi in the generated code (Android 14's object cleaner).
    implementation("androidx.annotation:annotation:1.9.1")

    // The JVM tests of src/test/kotlin run against the host library (scripts/test-kotlin.sh runs
    // them through pom.xml); in Gradle they compile with these.
    testImplementation("org.junit.jupiter:junit-jupiter:5.14.1")
    testRuntimeOnly("org.junit.platform:junit-platform-launcher")
    testImplementation("org.jetbrains.kotlinx:kotlinx-coroutines-test:1.10.2")
    testImplementation("net.java.dev.jna:jna:5.18.1")
}

tasks.withType<Test>().configureEach { useJUnitPlatform() }

// `gradle publishToMavenLocal`, or `gradle publish` with THUDO_MAVEN_URL (and
// THUDO_MAVEN_USER / THUDO_MAVEN_PASSWORD) for the team's repository:
// vn.hanoi.thudo:thudo-android:<version> (AAR, sources, POM with JNA and coroutines).
afterEvaluate {
    publishing {
        publications {
            create<MavenPublication>("release") {
                from(components["release"])
                artifactId = "thudo-android"
                pom {
                    name.set("thudo")
                    description.set("Offline-first core of Hanoi's citizen apps: encrypted vault, party handbook, health book, transit tickets, sync")
                }
            }
        }
        repositories {
            System.getenv("THUDO_MAVEN_URL")?.let { target ->
                maven {
                    name = "thudo"
                    url = uri(target)
                    credentials {
                        username = System.getenv("THUDO_MAVEN_USER")
                        password = System.getenv("THUDO_MAVEN_PASSWORD")
                    }
                }
            }
        }
    }
}
